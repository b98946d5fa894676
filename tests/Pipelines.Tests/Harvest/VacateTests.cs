using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Containers;
using Pipelines.Harvest;
using Pipelines.RunStore;
using Pipelines.Tests.Support;
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
[Integration]
public sealed class VacateTests : IDisposable
{
    private const string OneStep = """
          - name: count
            image: scripted:1
            command: ["count", "{inputs}"]
            outputs: ["*.tsv"]
            retries: 1
            reuse: false
        """;

    private const string SleepStep = """
          - name: count
            image: scripted:1
            command: ["sh", "-c", "echo counting started; busybox sleep 600"]
            outputs: ["*.tsv"]
            retries: 0
            reuse: false
        """;

    private readonly OwnerBurner _owner = new();

    /// <summary>
    /// The next delivery numbers its attempts after the vacated one (here a failed attempt, then
    /// a retry that succeeds), its step log goes on from the vacated attempt's, and the vacated
    /// attempt's record leaves the run's output once the task's end holds its row.
    /// </summary>
    [Fact]
    public async Task A_task_suspended_past_VacateAfter_goes_back_to_the_queue_and_completes_on_the_next_delivery()
    {
        var harvester = ShortThresholds(suspender: null);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var runs = 0;
        using var rig = new WorkerRig(
            async (spec, outDir, token) =>
            {
                var run = Interlocked.Increment(ref runs);
                if (run == 1)
                {
                    started.TrySetResult();
                    await Task.Delay(Timeout.Infinite, token);
                }

                if (run == 2)
                {
                    return ScriptedRuntime.Exit(1, "the first try after the vacate fails\n");
                }

                await File.WriteAllTextAsync(Path.Combine(outDir, "n.tsv"), "n\n1\n", token);
                return ScriptedRuntime.Exit(0, "counted\n");
            },
            more: s => s.AddSingleton(harvester));
        using var ticking = new CancellationTokenSource();
        var ticks = TickAsync(harvester, ticking.Token);
        var run = await rig.SubmitAsync(OneStep, [("a.txt", "alpha\n")]);

        var first = rig.DeliverAsync(run.RunId, 0);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(90));
        await BusyUntilVacatedAsync(harvester);
        await first.WaitAsync(TimeSpan.FromSeconds(90));

        Assert.Equal(1, harvester.Status().Vacated);
        Assert.Equal([(run.RunId, 0)], rig.Queue.Tasks.ToArray());
        Assert.False((await rig.TaskAsync(run.RunId, 0)).State.IsTerminal());
        Assert.Empty(rig.Queue.Gathers);

        rig.Queue.Tasks.Clear();
        await rig.DeliverAsync(run.RunId, 0);

        var task = await rig.TaskAsync(run.RunId, 0);
        Assert.Equal(TaskState.Succeeded, task.State);
        var rows = await rig.RowsAsync(run.RunId);
        Assert.Equal([("vacated", 1), ("failed", 2), ("succeeded", 3)], rows.Select(r => (r.Status, r.Attempt)));
        Assert.StartsWith("vacated:", rows[0].Error, StringComparison.Ordinal);
        Assert.Equal(3, runs);

        // One log for the step, every attempt in it under the number provenance gives it.
        Assert.All(rows, r => Assert.Equal($"tasks/{task.TaskId}/count.log", r.Log));
        var log = rig.Text(rig.Objects.Keys.Single(k => k.EndsWith($"tasks/{task.TaskId}/count.log", StringComparison.Ordinal)));
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(log, @"(?s)^=== pipelines: count attempt 1, vacated: the machine's owner needed it back.*=== pipelines: count attempt 2, exited with code 1.*the first try after the vacate fails.*=== pipelines: count attempt 3, exit 0.*counted"), log);
        Assert.DoesNotContain(rig.Objects.Keys, k => k.Contains($"tasks/{task.TaskId}/vacated/", StringComparison.Ordinal));
        Assert.Equal([run.RunId], rig.Queue.Gathers.ToArray());
        Assert.Empty(rig.Queue.Tasks);

        await ticking.CancelAsync();
        await ticks;
    }

    /// <summary>
    /// The job's own cancellation (the worker shutting down, or Hangfire restarting its server)
    /// arriving in the middle of a vacate: while the vacated container (a real one) is being
    /// stopped, or while the vacated attempt's rows are being written. Either way the attempt is
    /// recorded under tasks/TASK/vacated/ and the task handed back, and the next delivery's
    /// record holds it. Where the write never completes, the delivery still ends once
    /// Worker:VacateRecordGrace has passed after the cancellation, and the task is delivered again.
    /// </summary>
    [Theory]
    [InlineData("while the container is stopped")]
    [InlineData("while the record is written")]
    [InlineData("with a store that never answers")]
    public async Task A_vacate_cut_by_the_jobs_cancellation_still_records_the_vacated_attempt(string when)
    {
        using var docker = new DockerEngine(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint, CgroupParent = "pipelines-tests", IdleClass = false });
        var image = await docker.Images.ResolveImageAsync("pipelines-samples/pair-check:1", CancellationToken.None);
        var harvester = ShortThresholds(docker.Suspender);
        using var job = new CancellationTokenSource();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var runs = 0;
        using var rig = new WorkerRig(
            async (spec, outDir, token) =>
            {
                if (Interlocked.Increment(ref runs) == 1)
                {
                    // The first attempt is a real container, frozen by the busy owner, then vacated.
                    started.TrySetResult();
                    try
                    {
                        return await docker.Runtime.RunAsync(spec, token);
                    }
                    catch (OperationCanceledException) when (when == "while the container is stopped")
                    {
                        // The vacate has killed and removed the container; the shutdown comes now.
                        await job.CancelAsync();
                        throw;
                    }
                }

                await File.WriteAllTextAsync(Path.Combine(outDir, "n.tsv"), "n\n1\n", token);
                return ScriptedRuntime.Exit(0);
            },
            // A bound only: the busy owner leaves this process little CPU while the record is written.
            new Dictionary<string, string?> { ["Worker:VacateRecordGrace"] = when == "with a store that never answers" ? "00:00:01" : "00:02:00" },
            more: s => s.AddSingleton(harvester));
        rig.Objects.BeforePut = async (key, token) =>
        {
            if (!key.Contains("/vacated/", StringComparison.Ordinal) || when == "while the container is stopped")
            {
                return;
            }

            await job.CancelAsync();
            if (when == "with a store that never answers")
            {
                await Task.Delay(Timeout.Infinite, token);
            }
        };
        using var ticking = new CancellationTokenSource();
        var ticks = TickAsync(harvester, ticking.Token);
        var run = await rig.SubmitAsync(SleepStep, [("a.txt", "alpha\n")], digest: image);
        var taskId = (await rig.TaskAsync(run.RunId, 0)).TaskId;

        var first = rig.DeliverAsync(run.RunId, 0, job.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(90));

        // The container has printed before the owner gets busy, so that its vacated attempt has output to keep.
        await Eventually.WaitAsync(async () => await PrintedAsync(run.RunId) is { } printed && printed.Contains("counting started", StringComparison.Ordinal) ? true : (bool?)null, () => "the first attempt's container to print");
        await BusyUntilVacatedAsync(harvester);
        var ended = await Record.ExceptionAsync(() => first.WaitAsync(TimeSpan.FromSeconds(90)));

        Assert.True(job.IsCancellationRequested);
        Assert.Equal(1, harvester.Status().Vacated);
        Assert.False((await rig.TaskAsync(run.RunId, 0)).State.IsTerminal());
        var vacatedRows = rig.Objects.Keys.Where(k => k.Contains($"tasks/{taskId}/vacated/", StringComparison.Ordinal)).ToList();
        if (when == "with a store that never answers")
        {
            // Given up after the grace (and said in the log): the job ends cancelled, and
            // Hangfire delivers it again, as it does any job a shutdown cut.
            Assert.IsAssignableFrom<OperationCanceledException>(ended);
            Assert.Empty(vacatedRows);
            Assert.Empty(rig.Queue.Tasks);
        }
        else
        {
            Assert.Null(ended);
            Assert.Single(vacatedRows);
            Assert.Equal([(run.RunId, 0)], rig.Queue.Tasks.ToArray());
        }

        rig.Queue.Tasks.Clear();
        await rig.DeliverAsync(run.RunId, 0);

        Assert.Equal(TaskState.Succeeded, (await rig.TaskAsync(run.RunId, 0)).State);
        var rows = await rig.RowsAsync(run.RunId);
        Assert.Equal(when == "with a store that never answers" ? [("succeeded", 1)] : [("vacated", 1), ("succeeded", 2)], rows.Select(r => (r.Status, r.Attempt)));
        Assert.Equal(2, runs);
        Assert.Equal([run.RunId], rig.Queue.Gathers.ToArray());
        Assert.DoesNotContain(rig.Objects.Keys, k => k.Contains($"tasks/{taskId}/vacated/", StringComparison.Ordinal));
        if (when != "with a store that never answers")
        {
            // The vacated attempt's log holds what its real container printed before it was stopped.
            var log = rig.Text(rig.Objects.Keys.Single(k => k.EndsWith($"tasks/{taskId}/count.log", StringComparison.Ordinal)));
            Assert.True(System.Text.RegularExpressions.Regex.IsMatch(log, @"(?s)^=== pipelines: count attempt 1, vacated: .*\ncounting started\n=== pipelines: count attempt 2, exit 0"), log);
        }

        await ticking.CancelAsync();
        await ticks;
    }

    public void Dispose() => _owner.Dispose();

    /// <summary>
    /// Keeps the owner busy until the harvester has vacated the running step, then quiet. What
    /// follows the decision (the container's stop, the vacated attempt's record, the hand-back)
    /// is not left to run on what busy loops at the highest CPU weight spare: on a loaded machine
    /// that took over 90 s (CI, stop 33), as a test's bound, not as behaviour.
    /// </summary>
    private async Task BusyUntilVacatedAsync(Harvester harvester)
    {
        _owner.Start();
        try
        {
            await Eventually.WaitAsync(() => Task.FromResult(harvester.Status().Vacated > 0 ? true : (bool?)null), () => "the harvester to vacate the running step");
        }
        finally
        {
            _owner.Stop();
        }
    }

    /// <summary>What the run's running container has printed so far; null while none runs.</summary>
    private static async Task<string?> PrintedAsync(string runId)
    {
        using var docker = new Docker.DotNet.DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        var running = (await docker.Containers.ListContainersAsync(new Docker.DotNet.Models.ContainersListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { ["org.pipelines.run=" + runId] = true } },
        })).FirstOrDefault();
        if (running is null)
        {
            return null;
        }

        using var logs = await docker.Containers.GetContainerLogsAsync(running.ID, new Docker.DotNet.Models.ContainerLogsParameters { ShowStdout = true, ShowStderr = true });
        var (stdout, stderr) = await logs.ReadOutputToEndAsync(CancellationToken.None);
        return stdout + stderr;
    }

    /// <summary>A when-idle harvester with thresholds of a second or less, its owner the synthetic one's cgroup.</summary>
    private static Harvester ShortThresholds(IContainerSuspender? suspender) => new(
        new HostLoadSampler("pipelines-tests", TimeProvider.System, OwnerBurner.Cgroup),
        HarvestPolicy.WhenIdle,
        new HarvestOptions { StartBelow = 0.3, StartAfter = TimeSpan.Zero, SuspendAbove = 0.5, SuspendAfter = TimeSpan.FromMilliseconds(500), ResumeAfter = TimeSpan.FromSeconds(1), VacateAfter = TimeSpan.FromSeconds(1), AdmissionHold = TimeSpan.FromSeconds(60) },
        4,
        () => "test",
        suspender,
        TimeProvider.System,
        NullLogger<Harvester>.Instance);

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
