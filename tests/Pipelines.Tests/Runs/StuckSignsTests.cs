using Pipelines.Runs;
using Pipelines.RunStore;

namespace Pipelines.Tests.Runs;

/// <summary>The dashboard's signs that a run that has not ended may be stuck.</summary>
[Unit]
public sealed class StuckSignsTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_run_with_waiting_tasks_and_no_worker_connected_says_so()
    {
        var signs = StuckSigns.Of(Run(RunState.Running), new TaskCounts(3, 0, 2, 0, 0, 0), liveWorkers: 0, [], [], Now);
        Assert.Equal(["no worker is connected: 3 task(s) wait for one (start `pipelines worker`)"], signs);
    }

    [Fact]
    public void A_task_running_three_times_longer_than_its_ended_peers_is_named()
    {
        var ended = Enumerable.Range(0, 5).Select(i => Task(i, TaskState.Succeeded, Now.AddMinutes(-30), Now.AddMinutes(-30).AddMinutes(1))).ToList();
        var running = new[] { Task(5, TaskState.Running, Now.AddMinutes(-4), null), Task(6, TaskState.Running, Now.AddMinutes(-1), null) };

        var signs = StuckSigns.Of(Run(RunState.Running), new TaskCounts(0, 2, 5, 0, 0, 0), liveWorkers: 1, running, ended, Now);

        Assert.Equal(["task 5 has run for 4m00s on w:1, over 3x the 1m00s its ended peers took"], signs);
    }

    [Fact]
    public void An_ended_run_or_a_young_run_shows_no_sign()
    {
        Assert.Empty(StuckSigns.Of(Run(RunState.Succeeded), new TaskCounts(0, 0, 5, 0, 0, 0), liveWorkers: 0, [], [], Now));
        Assert.Empty(StuckSigns.Of(Run(RunState.Running), new TaskCounts(2, 1, 0, 0, 0, 0), liveWorkers: 1, [Task(0, TaskState.Running, Now.AddHours(-1), null)], [], Now));
    }

    private static RunRecord Run(RunState state) => new("r1", "wf", "", "{}", "/out/r1/", state, 5, 3, Now.AddHours(-1), null, null, null);

    private static TaskRecord Task(int index, TaskState state, DateTimeOffset? started, DateTimeOffset? finished) =>
        new("r1", index, "t" + index, state, [], new Dictionary<string, string>(), 1, null, null, "w:1", started, finished);
}
