using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Containers;
using Pipelines.Harvest;
using Pipelines.RunStore;
using Pipelines.Tests.Worker.Parts;

namespace Pipelines.Tests.Harvest;

/// <summary>
/// Vacate through the real task shell and parts: the harvester, sampling a synthetic owner on
/// the real kernel, stops a step that has been suspended for VacateAfter, and the task goes
/// back to the queue with its attempt recorded as vacated; the next delivery completes it,
/// not counted against retries, with nothing doubled. The step's container is scripted (the
/// rig's), so the suspension here is the harvester's decision alone; HarvestTests freezes real ones.
/// </summary>
[Collection("harvest")]
public sealed class VacateTests : IDisposable
{
    private const string OneStep = """
          - name: count
            image: scripted:1
            command: ["count", "{inputs}"]
            outputs: ["*.tsv"]
            retries: 0
        """;

    private readonly OwnerBurner _owner = new();

    [Fact]
    public async Task A_task_suspended_past_VacateAfter_goes_back_to_the_queue_and_completes_on_the_next_delivery()
    {
        var harvester = new Harvester(
            new HostLoadSampler("pipelines-tests", TimeProvider.System, OwnerBurner.Cgroup),
            HarvestPolicy.WhenIdle,
            new HarvestOptions { StartBelow = 0.3, StartAfter = TimeSpan.Zero, SuspendAbove = 0.5, SuspendAfter = TimeSpan.FromMilliseconds(500), ResumeAfter = TimeSpan.FromSeconds(1), VacateAfter = TimeSpan.FromSeconds(1), AdmissionHold = TimeSpan.FromSeconds(60) },
            4,
            "test",
            suspender: null,
            TimeProvider.System,
            NullLogger<Harvester>.Instance);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var runs = 0;
        using var rig = new WorkerRig(
            async (spec, outDir, token) =>
            {
                if (Interlocked.Increment(ref runs) == 1)
                {
                    started.TrySetResult();
                    await Task.Delay(Timeout.Infinite, token);
                }

                await File.WriteAllTextAsync(Path.Combine(outDir, "n.tsv"), "n\n1\n", token);
                return ScriptedRuntime.Exit(0);
            },
            more: s => s.AddSingleton(harvester));
        using var ticking = new CancellationTokenSource();
        var ticks = TickAsync(harvester, ticking.Token);
        var run = await rig.SubmitAsync(OneStep, [("a.txt", "alpha\n")]);

        var first = rig.DeliverAsync(run.RunId, 0);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(90));
        _owner.Start();
        await first.WaitAsync(TimeSpan.FromSeconds(90));
        _owner.Stop();

        Assert.Equal(1, harvester.Status().Vacated);
        Assert.Equal([(run.RunId, 0)], rig.Queue.Tasks.ToArray());
        Assert.False((await rig.TaskAsync(run.RunId, 0)).State.IsTerminal());
        Assert.Empty(rig.Queue.Gathers);

        rig.Queue.Tasks.Clear();
        await rig.DeliverAsync(run.RunId, 0);

        var task = await rig.TaskAsync(run.RunId, 0);
        Assert.Equal(TaskState.Succeeded, task.State);
        var rows = await rig.RowsAsync(run.RunId);
        Assert.Equal([("vacated", 1), ("succeeded", 2)], rows.Select(r => (r.Status, r.Attempt)));
        Assert.StartsWith("vacated:", rows[0].Error, StringComparison.Ordinal);
        Assert.Equal(2, runs);
        Assert.Equal([run.RunId], rig.Queue.Gathers.ToArray());
        Assert.Empty(rig.Queue.Tasks);

        await ticking.CancelAsync();
        await ticks;
    }

    public void Dispose() => _owner.Dispose();

    private static async Task TickAsync(Harvester harvester, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await harvester.TickAsync(CancellationToken.None);
            try
            {
                await Task.Delay(200, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
