using Npgsql;
using Pipelines.Planning;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.RunStore;

/// <summary>The run store against the real PostgreSQL that scripts/test starts; each test has a schema of its own.</summary>
public sealed class PostgresRunStoreTests : IAsyncLifetime
{
    private NpgsqlDataSource _db = null!;
    private PostgresRunStore _store = null!;
    private readonly string _schema = TestEnvironment.NewName("t_");
    private static readonly DateTimeOffset Now = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);

    public async Task InitializeAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        _store = new PostgresRunStore(_db, _schema);
        await _store.InitializeAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA {_schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _db.DisposeAsync();
    }

    [Fact]
    public async Task Initialize_is_safe_to_run_concurrently_and_twice()
    {
        var others = Enumerable.Range(0, 4).Select(_ => new PostgresRunStore(_db, _schema).InitializeAsync(CancellationToken.None));
        await Task.WhenAll(others);
        await _store.InitializeAsync(CancellationToken.None);
    }

    [Fact]
    public async Task A_created_run_reads_back_with_all_its_tasks_queued()
    {
        await CreateRunAsync("r1", 3);

        var run = await _store.GetRunAsync("r1", CancellationToken.None);
        var tasks = await _store.GetTasksAsync("r1", CancellationToken.None);
        var counts = await _store.CountTasksAsync("r1", CancellationToken.None);

        Assert.NotNull(run);
        Assert.Equal(RunState.Running, run.State);
        Assert.Equal(3, run.Remaining);
        Assert.Equal([0, 1, 2], tasks.Select(t => t.Index));
        Assert.All(tasks, t => Assert.Equal(TaskState.Queued, t.State));
        Assert.Equal("in/f1.fastq", tasks[1].Inputs[0].Key);
        Assert.Equal("s1", tasks[1].Captures["sample"]);
        Assert.Equal(new TaskCounts(3, 0, 0, 0, 0, 0), counts);
    }

    [Fact]
    public async Task A_run_created_from_a_stream_of_tasks_counts_them_and_an_empty_stream_creates_nothing()
    {
        var run = new RunRecord("rs", "wf", "version: 1", "{}", "/tmp/out/rs/", RunState.Running, 0, 0, Now, null, null, null);

        Assert.Equal(0, await _store.CreateRunAsync(run, Tasks("rs", 0), CancellationToken.None));
        Assert.Null(await _store.GetRunAsync("rs", CancellationToken.None));

        Assert.Equal(5, await _store.CreateRunAsync(run, Tasks("rs", 5), CancellationToken.None));
        var created = await _store.GetRunAsync("rs", CancellationToken.None);
        Assert.Equal((5, 5), (created!.TaskCount, created.Remaining));
        Assert.Equal(5, (await _store.GetTasksAsync("rs", CancellationToken.None)).Count);

        static async IAsyncEnumerable<TaskRecord> Tasks(string runId, int count)
        {
            for (var i = 0; i < count; i++)
            {
                yield return new TaskRecord(runId, i, $"id{i}", TaskState.Queued, [new InputFile($"f{i}", 1, "h")], new Dictionary<string, string>(), 0, null, null, null, null, null);
                await Task.Yield();
            }
        }
    }

    [Fact]
    public async Task A_split_adds_the_children_once_after_the_last_task_and_counts_them_as_remaining()
    {
        await CreateRunAsync("rsplit", 3);
        var children = Enumerable.Range(0, 2).Select(i => new TaskRecord("rsplit", -1, $"child{i}", TaskState.Queued, [new InputFile($"in/c{i}", 1, "h")], new Dictionary<string, string>(), 0, null, null, null, null, null)).ToList();
        var outcome = new TaskOutcome(TaskState.Failed, 2, "bad input", Now);

        var first = await _store.SplitTaskAsync("rsplit", 1, outcome, [Row("rsplit", 1, 1)], children, CancellationToken.None);
        var second = await _store.SplitTaskAsync("rsplit", 1, outcome, [Row("rsplit", 1, 1)], children, CancellationToken.None);

        Assert.True(first.Committed);
        Assert.Equal([3, 4], first.Children);
        Assert.Equal(4, first.Remaining); // 3 - the split one + 2 children
        Assert.False(second.Committed);
        Assert.Empty(second.Children);
        var tasks = await _store.GetTasksAsync("rsplit", CancellationToken.None);
        Assert.Equal(5, tasks.Count);
        Assert.Equal(TaskState.Split, tasks[1].State);
        Assert.All(tasks.Skip(3), t => Assert.Equal((TaskState.Queued, (int?)1), (t.State, t.ParentIndex)));
        var counts = await _store.CountTasksAsync("rsplit", CancellationToken.None);
        Assert.Equal((5, 1, 1), (counts.Total, counts.Ended, counts.Split));
        Assert.Equal(5, (await _store.GetRunAsync("rsplit", CancellationToken.None))!.TaskCount);
    }

    [Fact]
    public async Task A_task_commits_once_and_a_second_delivery_changes_nothing()
    {
        await CreateRunAsync("r2", 2);
        Assert.Equal(0, await _store.ClaimTaskAsync("r2", 0, "w1", Now, Now.AddSeconds(45), CancellationToken.None));

        var first = await _store.CommitTaskAsync("r2", 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [Row("r2", 0, 1)], CancellationToken.None);
        var second = await _store.CommitTaskAsync("r2", 0, new TaskOutcome(TaskState.Failed, 2, "late duplicate", Now), [Row("r2", 0, 2)], CancellationToken.None);

        Assert.Equal((true, 1), first);
        Assert.Equal((false, 1), second);
        var task = await _store.GetTaskAsync("r2", 0, CancellationToken.None);
        Assert.Equal(TaskState.Succeeded, task!.State);
        Assert.Single(await _store.GetProvenanceAsync("r2", CancellationToken.None));
        Assert.Null(await _store.ClaimTaskAsync("r2", 0, "w2", Now, Now.AddSeconds(45), CancellationToken.None));
    }

    [Fact]
    public async Task Concurrent_commits_of_every_task_count_each_task_once_and_reach_zero_once()
    {
        const int tasks = 40;
        await CreateRunAsync("r3", tasks);

        // Every task is committed by two "deliveries" at once.
        var results = await Task.WhenAll(Enumerable.Range(0, tasks * 2).Select(i => Task.Run(() =>
            _store.CommitTaskAsync("r3", i % tasks, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [Row("r3", i % tasks, 1)], CancellationToken.None))));

        Assert.Equal(tasks, results.Count(r => r.Committed));
        Assert.Equal(1, results.Count(r => r.Committed && r.Remaining == 0));
        Assert.Equal(tasks, (await _store.GetProvenanceAsync("r3", CancellationToken.None)).Count);
        Assert.Equal(0, (await _store.GetRunAsync("r3", CancellationToken.None))!.Remaining);
    }

    [Fact]
    public async Task Only_one_gather_job_begins_and_the_same_job_may_begin_again()
    {
        await CreateRunAsync("r4", 1);
        Assert.False(await _store.TryBeginGatherAsync("r4", "job-a", CancellationToken.None));
        await _store.CommitTaskAsync("r4", 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [], CancellationToken.None);

        var begun = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => _store.TryBeginGatherAsync("r4", "job-" + i, CancellationToken.None)));

        Assert.Equal(1, begun.Count(b => b));
        var winner = "job-" + Array.IndexOf(begun, true);
        Assert.True(await _store.TryBeginGatherAsync("r4", winner, CancellationToken.None));
        Assert.False(await _store.TryBeginGatherAsync("r4", "job-late", CancellationToken.None));
        Assert.Equal(RunState.Gathering, (await _store.GetRunAsync("r4", CancellationToken.None))!.State);

        await _store.FinishRunAsync("r4", RunState.Succeeded, null, Now, CancellationToken.None);
        await _store.FinishRunAsync("r4", RunState.Failed, "ignored: already ended", Now, CancellationToken.None);
        var run = await _store.GetRunAsync("r4", CancellationToken.None);
        Assert.Equal(RunState.Succeeded, run!.State);
        Assert.Null(run.Error);
    }

    [Fact]
    public async Task A_stop_request_keeps_queued_tasks_from_being_claimed()
    {
        await CreateRunAsync("r5", 2);
        await _store.RequestStopAsync("r5", "first reason", CancellationToken.None);
        await _store.RequestStopAsync("r5", "second reason", CancellationToken.None);

        Assert.Null(await _store.ClaimTaskAsync("r5", 1, "w", Now, Now.AddSeconds(45), CancellationToken.None));
        Assert.Equal("first reason", (await _store.GetRunAsync("r5", CancellationToken.None))!.StopReason);
    }

    [Fact]
    public async Task Runs_and_tasks_are_listed_by_filter_one_page_at_a_time()
    {
        await RunQueries.AssertPagingAndFiltersAsync(_store);
    }

    private Task CreateRunAsync(string runId, int count)
    {
        var run = new RunRecord(runId, "wf", "version: 1", "{}", "/tmp/out/" + runId + "/", RunState.Running, count, count, Now, null, null, null);
        var tasks = Enumerable.Range(0, count).Select(i => new TaskRecord(
            runId, i, $"id{i:D4}", TaskState.Queued, [new InputFile($"in/f{i}.fastq", 10 + i, "abc")],
            new Dictionary<string, string> { ["sample"] = $"s{i}" }, 0, null, null, null, null, null)).ToList();
        return _store.CreateRunAsync(run, tasks, CancellationToken.None);
    }

    private static ProvenanceRow Row(string runId, int index, int attempt) => new()
    {
        RunId = runId,
        TaskId = $"id{index:D4}",
        TaskIndex = index,
        Attempt = attempt,
        Step = "stats",
        Status = "succeeded",
        Command = ["x"],
        Inputs = [new FileRef { Key = "k", Size = 1, Sha256 = "s" }],
        StartedAt = Now.UtcDateTime,
        FinishedAt = Now.UtcDateTime,
    };
}
