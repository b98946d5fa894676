using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Planning;
using Pipelines.RunStore;
using Pipelines.Worker;

namespace Pipelines.Tests.Warm;

/// <summary>
/// A run's warm step containers are stopped when the run has no task left even where this worker
/// did not settle its last task (the dispatcher ended a cancelled run's pending tasks, or another
/// worker settled the last one): on the real Docker engine.
/// </summary>
[Integration]
public sealed class WarmStepWatchTests : IAsyncLifetime
{
    private readonly WarmTestContext _context = new();
    private readonly InMemoryRunStore _store = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        _store.Dispose();
        await _context.DisposeAsync();
    }

    [Fact]
    public async Task The_containers_of_a_run_that_ended_elsewhere_are_stopped_and_those_of_a_running_or_unknown_run_are_kept()
    {
        var pool = _context.Pool();
        var watch = new WarmStepWatch(_store, new WorkerOptions(), TimeProvider.System, NullLogger<WarmStepWatch>.Instance, pool);
        await _store.CreateRunAsync(Run("r-ended"), [OneTask("r-ended")], CancellationToken.None);
        await _store.CreateRunAsync(Run("r-running"), [OneTask("r-running")], CancellationToken.None);
        var ids = new Dictionary<string, string>();
        foreach (var run in new[] { "r-ended", "r-running", "r-planned" })
        {
            await using var lease = await pool.AcquireAsync(await _context.ForkSpecAsync($"run:{run}/step:s"), CancellationToken.None);
            ids[run] = lease.ContainerId;
        }

        Assert.Empty(await watch.LookAsync(CancellationToken.None));

        // The run ends without this worker settling a task of it: its container is stopped by the next look.
        await _store.FinishRunAsync("r-ended", RunState.Cancelled, null, DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Equal(["r-ended"], await watch.LookAsync(CancellationToken.None));
        Assert.False(await _context.ExistsAsync(ids["r-ended"]));
        Assert.True(await _context.ExistsAsync(ids["r-running"]));
        Assert.True(await _context.ExistsAsync(ids["r-planned"]));
        Assert.Equal(["run:r-planned/step:s", "run:r-running/step:s"], pool.Stats().Select(s => s.Owner).Order(StringComparer.Ordinal));
    }

    private static RunRecord Run(string id) =>
        new(id, "wf", "version: 1", "{}", "/tmp/out/" + id + "/", RunState.Running, 1, 1, DateTimeOffset.UtcNow, null, null, null);

    private static TaskRecord OneTask(string id) => new(
        id, 0, "id0000", TaskState.Queued, [new InputFile("in/f.fastq", 10, "abc")], new Dictionary<string, string>(), 0, null, null, null, null, null);
}
