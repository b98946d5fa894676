using Pipelines.Planning;
using Pipelines.RunStore;

namespace Pipelines.Tests.RunStore;

/// <summary>The paging and filtering contract of IRunStore, checked the same way on both stores.</summary>
public static class RunQueries
{
    private static readonly DateTimeOffset Start = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);

    public static async Task AssertPagingAndFiltersAsync(IRunStore store)
    {
        var ct = CancellationToken.None;
        for (var i = 0; i < 5; i++)
        {
            var id = $"q{i}";
            var run = new RunRecord(id, i % 2 == 0 ? "even" : "odd", "version: 1", "{}", "/tmp/out/" + id + "/", RunState.Running, 4, 4, Start.AddMinutes(i), null, null, null);
            var tasks = Enumerable.Range(0, 4).Select(t => new TaskRecord(id, t, $"{id}t{t}", TaskState.Queued, [new InputFile($"f{t}", 1, "")], new Dictionary<string, string>(), 0, null, null, null, null, null)).ToList();
            await store.CreateRunAsync(run, tasks, ct);
        }

        await store.FinishRunAsync("q4", RunState.Succeeded, null, Start.AddHours(1), ct);
        Assert.NotNull(await store.ClaimTaskAsync("q0", 2, "w", Start, Start.AddSeconds(45), ct));

        var first = await store.QueryRunsAsync(new RunQuery(Offset: 0, Limit: 2), ct);
        Assert.Equal(5, first.Total);
        Assert.Equal(["q4", "q3"], first.Items.Select(r => r.RunId));
        var last = await store.QueryRunsAsync(new RunQuery(Offset: 4, Limit: 2), ct);
        Assert.Equal(["q0"], last.Items.Select(r => r.RunId));

        var even = await store.QueryRunsAsync(new RunQuery(Workflow: "even"), ct);
        Assert.Equal(["q4", "q2", "q0"], even.Items.Select(r => r.RunId));
        var evenRunning = await store.QueryRunsAsync(new RunQuery(Workflow: "even", State: RunState.Running), ct);
        Assert.Equal(2, evenRunning.Total);
        Assert.Equal(["q2", "q0"], evenRunning.Items.Select(r => r.RunId));

        var tasksPage = await store.QueryTasksAsync("q0", new TaskQuery(Offset: 1, Limit: 2), ct);
        Assert.Equal(4, tasksPage.Total);
        Assert.Equal([1, 2], tasksPage.Items.Select(t => t.Index));
        var running = await store.QueryTasksAsync("q0", new TaskQuery(State: TaskState.Running), ct);
        Assert.Equal(1, running.Total);
        Assert.Equal(2, Assert.Single(running.Items).Index);
        Assert.Equal(0, (await store.QueryTasksAsync("nope", new TaskQuery(), ct)).Total);
    }
}

public sealed class InMemoryRunStoreTests
{
    [Fact]
    public async Task Runs_and_tasks_are_listed_by_filter_one_page_at_a_time()
    {
        await RunQueries.AssertPagingAndFiltersAsync(new InMemoryRunStore());
    }
}
