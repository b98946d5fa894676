using Npgsql;
using Pipelines.Hosting;
using Pipelines.Planning;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.RunStore;

/// <summary>
/// The behaviour of <see cref="IRunStore"/> that both stores share, run against each of them:
/// every method, the conditional rules under concurrent callers, and one answer for unknown
/// runs, duplicate runs and runs of no task. Run ids are new per test, so a store may be shared.
/// </summary>
public abstract class RunStoreContract
{
    private static readonly DateTimeOffset Now = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;
    private const int Callers = 8;

    protected abstract IRunStore Store { get; }

    [Fact]
    public async Task A_created_run_reads_back_queued_with_its_counts_taken_from_its_tasks()
    {
        var id = NewId();
        var run = Run(id) with { TaskCount = 99, Remaining = 99, StopReason = "ignored", Error = "ignored", FinishedAt = Now };
        await Store.CreateRunAsync(run, Tasks(id, 3), None);

        var read = await Store.GetRunAsync(id, None);
        var tasks = await Store.GetTasksAsync(id, None);

        Assert.NotNull(read);
        Assert.Equal((RunState.Running, 3, 3, "wf", "version: 1", "/tmp/out/" + id + "/"), (read.State, read.TaskCount, read.Remaining, read.WorkflowName, read.WorkflowYaml, read.OutputUri));
        Assert.Equal((Now, (DateTimeOffset?)null, (string?)null, (string?)null), (read.CreatedAt, read.FinishedAt, read.StopReason, read.Error));
        Assert.Equal([0, 1, 2], tasks.Select(t => t.Index));
        Assert.All(tasks, t => Assert.Equal((TaskState.Queued, 0, (string?)null, (int?)null), (t.State, t.Attempts, t.Worker, t.ParentIndex)));
        Assert.Equal("in/f1.fastq", tasks[1].Inputs[0].Key);
        Assert.Equal("s1", tasks[1].Captures["sample"]);
        Assert.Equal("id0001", (await Store.GetTaskAsync(id, 1, None))!.TaskId);
        Assert.Equal(new TaskCounts(3, 0, 0, 0, 0, 0), await Store.CountTasksAsync(id, None));
    }

    [Fact]
    public async Task A_streamed_run_counts_its_tasks_and_an_empty_stream_creates_nothing()
    {
        var id = NewId();

        Assert.Equal(0, await Store.CreateRunAsync(Run(id), Stream(Tasks(id, 0)), None));
        Assert.Null(await Store.GetRunAsync(id, None));

        Assert.Equal(5, await Store.CreateRunAsync(Run(id), Stream(Tasks(id, 5)), None));
        var created = await Store.GetRunAsync(id, None);
        Assert.Equal((5, 5), (created!.TaskCount, created.Remaining));
        Assert.Equal([0, 1, 2, 3, 4], (await Store.GetTasksAsync(id, None)).Select(t => t.Index));
    }

    /// <summary>The submitter writes workflow.yaml at the end of the stream: a write that fails must leave no run.</summary>
    [Fact]
    public async Task A_stream_that_throws_after_its_last_task_creates_nothing_and_the_error_goes_on()
    {
        var id = NewId();

        var e = await Assert.ThrowsAsync<PipelinesException>(() => Store.CreateRunAsync(Run(id), ThenThrow(Stream(Tasks(id, 700))), None));

        Assert.Equal("the output location cannot be written", e.Message);
        Assert.Null(await Store.GetRunAsync(id, None));
        Assert.Empty(await Store.GetTasksAsync(id, None));
        Assert.Equal(5, await Store.CreateRunAsync(Run(id), Stream(Tasks(id, 5)), None));
    }

    [Fact]
    public async Task A_whole_create_of_no_task_is_refused_and_creates_nothing()
    {
        var id = NewId();

        await Assert.ThrowsAsync<ArgumentException>(() => Store.CreateRunAsync(Run(id), [], None));

        Assert.Null(await Store.GetRunAsync(id, None));
    }

    [Fact]
    public async Task Tasks_not_numbered_from_zero_in_order_are_refused_and_nothing_is_created()
    {
        var gap = NewId();
        var otherRun = NewId();
        var tasks = Tasks(gap, 3);
        IReadOnlyList<TaskRecord> withGap = [tasks[0], tasks[1] with { Index = 2 }];

        await Assert.ThrowsAsync<ArgumentException>(() => Store.CreateRunAsync(Run(gap), withGap, None));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CreateRunAsync(Run(gap), Stream(withGap), None));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CreateRunAsync(Run(otherRun), tasks, None));

        Assert.Null(await Store.GetRunAsync(gap, None));
        Assert.Null(await Store.GetRunAsync(otherRun, None));
        Assert.Empty(await Store.GetTasksAsync(gap, None));
    }

    [Fact]
    public async Task A_duplicate_run_id_throws_DuplicateRunException_and_keeps_the_first_run()
    {
        var id = NewId();
        await Store.CreateRunAsync(Run(id), Tasks(id, 2), None);

        var whole = await Assert.ThrowsAsync<DuplicateRunException>(() => Store.CreateRunAsync(Run(id) with { WorkflowName = "second" }, Tasks(id, 3), None));
        await Assert.ThrowsAsync<DuplicateRunException>(() => Store.CreateRunAsync(Run(id), Stream(Tasks(id, 3)), None));
        await Assert.ThrowsAsync<DuplicateRunException>(() => Store.CreateRunAsync(Run(id), Stream(Tasks(id, 0)), None));

        Assert.Equal(id, whole.RunId);
        Assert.False(whole.RetryHelps);
        var run = await Store.GetRunAsync(id, None);
        Assert.Equal(("wf", 2), (run!.WorkflowName, run.TaskCount));
        Assert.Equal(2, (await Store.GetTasksAsync(id, None)).Count);
    }

    [Fact]
    public async Task Concurrent_creates_of_one_run_id_create_it_once_and_the_others_are_told_it_exists()
    {
        var id = NewId();

        var outcomes = await Task.WhenAll(Enumerable.Range(0, Callers).Select(_ => Task.Run(async () =>
        {
            try
            {
                await Store.CreateRunAsync(Run(id), Tasks(id, 3), None);
                return "created";
            }
            catch (DuplicateRunException)
            {
                return "duplicate";
            }
        })));

        Assert.Equal(1, outcomes.Count(o => o == "created"));
        Assert.Equal(Callers - 1, outcomes.Count(o => o == "duplicate"));
        Assert.Equal(3, (await Store.GetTasksAsync(id, None)).Count);
    }

    [Fact]
    public async Task Reads_of_an_unknown_run_or_task_find_nothing()
    {
        var known = await CreateAsync(2);
        var unknown = NewId();

        Assert.Null(await Store.GetRunAsync(unknown, None));
        Assert.Null(await Store.GetTaskAsync(unknown, 0, None));
        Assert.Null(await Store.GetTaskAsync(known, 2, None));
        Assert.Null(await Store.GetTaskAsync(known, -1, None));
        Assert.Empty(await Store.GetTasksAsync(unknown, None));
        Assert.Equal(new TaskCounts(0, 0, 0, 0, 0, 0), await Store.CountTasksAsync(unknown, None));
        var page = await Store.QueryTasksAsync(unknown, new TaskQuery(), None);
        Assert.Equal((0, 0), (page.Total, page.Items.Count));
        Assert.Empty(await Store.GetProvenanceAsync(unknown, None));
    }

    [Fact]
    public async Task Claim_renew_and_begin_gather_of_an_unknown_run_or_task_say_no()
    {
        var known = await CreateAsync(1);
        var unknown = NewId();

        Assert.Null(await Store.ClaimTaskAsync(unknown, 0, "w", Now, Now.AddSeconds(45), None));
        Assert.Null(await Store.ClaimTaskAsync(known, 1, "w", Now, Now.AddSeconds(45), None));
        Assert.False(await Store.RenewLeaseAsync(unknown, 0, "w", Now, Now.AddSeconds(45), None));
        Assert.False(await Store.RenewLeaseAsync(known, 1, "w", Now, Now.AddSeconds(45), None));
        Assert.False(await Store.TryBeginGatherAsync(unknown, "job", None));
    }

    [Fact]
    public async Task Commit_split_stop_and_finish_of_an_unknown_run_or_task_throw_UnknownRunException()
    {
        var known = await CreateAsync(1);
        var unknown = NewId();
        var outcome = Succeeded();

        var commit = await Assert.ThrowsAsync<UnknownRunException>(() => Store.CommitTaskAsync(unknown, 0, outcome, [], None));
        await Assert.ThrowsAsync<UnknownRunException>(() => Store.SplitTaskAsync(unknown, 0, outcome, [], [Child(0)], None));
        await Assert.ThrowsAsync<UnknownRunException>(() => Store.RequestStopAsync(unknown, "why", None));
        await Assert.ThrowsAsync<UnknownRunException>(() => Store.FinishRunAsync(unknown, RunState.Failed, "why", Now, None));
        var task = await Assert.ThrowsAsync<UnknownRunException>(() => Store.CommitTaskAsync(known, 1, outcome, [Row(1, 1)], None));
        var split = await Assert.ThrowsAsync<UnknownRunException>(() => Store.SplitTaskAsync(known, 1, outcome, [], [Child(0)], None));

        Assert.Equal((unknown, (int?)null), (commit.RunId, commit.Index));
        Assert.Equal((known, (int?)1), (task.RunId, task.Index));
        Assert.Equal((known, (int?)1), (split.RunId, split.Index));
        var run = await Store.GetRunAsync(known, None);
        Assert.Equal((1, 1), (run!.TaskCount, run.Remaining));
        Assert.Empty(await Store.GetProvenanceAsync(known, None));
    }

    [Fact]
    public async Task A_queued_task_is_claimed_with_a_lease_and_a_live_lease_refuses_a_second_claim()
    {
        var id = await CreateAsync(1);

        Assert.Equal(0, await Store.ClaimTaskAsync(id, 0, "w1", Now, Now.AddSeconds(45), None));
        Assert.Null(await Store.ClaimTaskAsync(id, 0, "w2", Now.AddSeconds(44), Now.AddSeconds(90), None));

        var task = await Store.GetTaskAsync(id, 0, None);
        Assert.Equal((TaskState.Running, "w1", (DateTimeOffset?)Now, (DateTimeOffset?)Now.AddSeconds(45)), (task!.State, task.Worker, task.StartedAt, task.LeaseUntil));
        Assert.Equal(1, (await Store.CountTasksAsync(id, None)).Running);
    }

    [Fact]
    public async Task A_running_task_whose_lease_expired_is_claimed_by_another_worker_and_the_first_loses_its_lease()
    {
        var id = await CreateAsync(1);
        await Store.ClaimTaskAsync(id, 0, "w1", Now, Now.AddSeconds(45), None);

        // The first delivery left no end: the claim records it (lost) and counts it.
        Assert.Equal(1, await Store.ClaimTaskAsync(id, 0, "w2", Now.AddSeconds(45), Now.AddSeconds(90), None));

        Assert.False(await Store.RenewLeaseAsync(id, 0, "w1", Now, Now.AddSeconds(120), None));
        Assert.True(await Store.RenewLeaseAsync(id, 0, "w2", Now.AddSeconds(45), Now.AddSeconds(120), None));
        Assert.Equal(("w2", (DateTimeOffset?)Now.AddSeconds(120)), ((await Store.GetTaskAsync(id, 0, None))!.Worker, (await Store.GetTaskAsync(id, 0, None))!.LeaseUntil));
    }

    [Fact]
    public async Task Renewing_to_a_time_already_past_releases_the_lease_for_the_next_claim()
    {
        var id = await CreateAsync(1);
        await Store.ClaimTaskAsync(id, 0, "w1", Now, Now.AddSeconds(45), None);

        Assert.False(await Store.RenewLeaseAsync(id, 0, "w1", Now.AddSeconds(1), Now.AddSeconds(90), None));
        Assert.True(await Store.RenewLeaseAsync(id, 0, "w1", Now, Now.AddSeconds(5), None));

        Assert.Null(await Store.ClaimTaskAsync(id, 0, "w2", Now.AddSeconds(4), Now.AddSeconds(50), None));
        Assert.Equal(1, await Store.ClaimTaskAsync(id, 0, "w2", Now.AddSeconds(5), Now.AddSeconds(50), None));
    }

    [Fact]
    public async Task Concurrent_claims_of_a_queued_task_let_one_worker_hold_it()
    {
        var id = await CreateAsync(1);

        var claims = await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() => Store.ClaimTaskAsync(id, 0, "w" + i, Now, Now.AddSeconds(45), None))));

        Assert.Single(claims, c => c is not null);
        var winner = "w" + Array.FindIndex(claims, c => c is not null);
        Assert.Equal(winner, (await Store.GetTaskAsync(id, 0, None))!.Worker);
    }

    [Fact]
    public async Task A_stopping_run_refuses_claims_and_the_first_stop_reason_wins()
    {
        var id = await CreateAsync(2);
        await Store.ClaimTaskAsync(id, 0, "w1", Now, Now.AddSeconds(45), None);

        await Store.RequestStopAsync(id, "first reason", None);
        await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() => Store.RequestStopAsync(id, "later reason " + i, None))));

        Assert.Null(await Store.ClaimTaskAsync(id, 1, "w", Now, Now.AddSeconds(45), None));
        Assert.Null(await Store.ClaimTaskAsync(id, 0, "w2", Now.AddSeconds(60), Now.AddSeconds(90), None));
        var run = await Store.GetRunAsync(id, None);
        Assert.Equal(("first reason", RunState.Running), (run!.StopReason, run.State));
    }

    [Fact]
    public async Task A_run_that_gathers_or_has_ended_refuses_claims()
    {
        var gathering = await CreateAsync(1);
        await Store.CommitTaskAsync(gathering, 0, Succeeded(), [], None);
        Assert.True(await Store.TryBeginGatherAsync(gathering, "job", None));
        var ended = await CreateAsync(1);
        await Store.FinishRunAsync(ended, RunState.Failed, "broken", Now, None);

        Assert.Null(await Store.ClaimTaskAsync(gathering, 0, "w", Now, Now.AddSeconds(45), None));
        Assert.Null(await Store.ClaimTaskAsync(ended, 0, "w", Now, Now.AddSeconds(45), None));
        Assert.Equal(TaskState.Queued, (await Store.GetTaskAsync(ended, 0, None))!.State);
    }

    [Fact]
    public async Task A_task_commits_once_and_a_second_delivery_changes_nothing()
    {
        var id = await CreateAsync(2);
        await Store.ClaimTaskAsync(id, 0, "w1", Now, Now.AddSeconds(45), None);

        var first = await Store.CommitTaskAsync(id, 0, new TaskOutcome(TaskState.Failed, 3, "exit 3", Now.AddSeconds(9)), [Row(0, 1), Row(0, 2)], None);
        var second = await Store.CommitTaskAsync(id, 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [Row(0, 3)], None);

        Assert.Equal((true, 1), first);
        Assert.Equal((false, 1), second);
        var task = await Store.GetTaskAsync(id, 0, None);
        Assert.Equal((TaskState.Failed, (long?)3, "exit 3", (DateTimeOffset?)Now.AddSeconds(9), 2), (task!.State, task.ExitCode, task.Error, task.FinishedAt, task.Attempts));
        Assert.Equal([1, 2], (await Store.GetProvenanceAsync(id, None)).Select(r => r.Attempt));
        Assert.Null(await Store.ClaimTaskAsync(id, 0, "w2", Now.AddSeconds(60), Now.AddSeconds(90), None));
        Assert.False(await Store.RenewLeaseAsync(id, 0, "w1", Now, Now.AddSeconds(90), None));
        Assert.Equal(1, (await Store.GetRunAsync(id, None))!.Remaining);
    }

    [Fact]
    public async Task The_provenance_of_some_tasks_is_theirs_alone_in_the_runs_order()
    {
        var id = await CreateAsync(3);
        foreach (var i in new[] { 2, 0, 1 })
        {
            await Store.ClaimTaskAsync(id, i, "w1", Now, Now.AddSeconds(45), None);
            await Store.CommitTaskAsync(id, i, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [Row(i, 1, "b"), Row(i, 1, "a"), Row(i, 2, "a")], None);
        }

        var some = await Store.GetProvenanceAsync(id, [2, 0], None);
        var all = await Store.GetProvenanceAsync(id, None);

        Assert.Equal(all.Where(r => r.TaskIndex != 1).Select(r => (r.TaskIndex, r.Step, r.Attempt)), some.Select(r => (r.TaskIndex, r.Step, r.Attempt)));
        Assert.Equal(6, some.Count);
        Assert.Empty(await Store.GetProvenanceAsync(id, [7], None));
        Assert.Empty(await Store.GetProvenanceAsync(NewId(), [0], None));
    }

    [Fact]
    public async Task The_provenance_read_as_a_stream_is_the_whole_runs_rows_in_the_same_order()
    {
        var id = await CreateAsync(4);
        foreach (var i in new[] { 3, 1, 0, 2 })
        {
            await Store.ClaimTaskAsync(id, i, "w1", Now, Now.AddSeconds(45), None);
            await Store.CommitTaskAsync(id, i, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [Row(i, 1, "b"), Row(i, 1, "a"), Row(i, 2, "b"), Row(i, 2, "a")], None);
        }

        var listed = await Store.GetProvenanceAsync(id, None);
        var streamed = await Store.ReadProvenanceAsync(id, None).ToListAsync();

        Assert.Equal(16, streamed.Count);
        Assert.Equal(listed.Select(r => (r.TaskIndex, r.Step, r.Attempt)), streamed.Select(r => (r.TaskIndex, r.Step, r.Attempt)));
        Assert.Equal([(0, "b", 1), (0, "b", 2), (0, "a", 1), (0, "a", 2)], streamed.Take(4).Select(r => (r.TaskIndex, r.Step, r.Attempt)));
        Assert.Empty(await Store.ReadProvenanceAsync(NewId(), None).ToListAsync());
    }

    [Fact]
    public async Task A_queued_task_can_be_committed_without_a_claim_as_a_cancel_does()
    {
        var id = await CreateAsync(1);

        Assert.Equal((true, 0), await Store.CommitTaskAsync(id, 0, new TaskOutcome(TaskState.Cancelled, null, "not started", Now), [], None));

        Assert.Equal((TaskState.Cancelled, 0), ((await Store.GetTaskAsync(id, 0, None))!.State, (await Store.GetTaskAsync(id, 0, None))!.Attempts));
    }

    [Fact]
    public async Task Concurrent_commits_of_one_task_commit_it_once_count_it_once_and_write_its_rows_once()
    {
        var id = await CreateAsync(3);

        var results = await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() =>
            Store.CommitTaskAsync(id, 1, new TaskOutcome(TaskState.Succeeded, i, null, Now), [Row(1, 1, "trim"), Row(1, 1, "stats")], None))));

        var winner = Assert.Single(results, r => r.Committed);
        Assert.Equal(2, winner.Remaining);
        Assert.All(results, r => Assert.Equal(2, r.Remaining));
        Assert.Equal(2, (await Store.GetProvenanceAsync(id, None)).Count);
        Assert.Equal(2, (await Store.GetRunAsync(id, None))!.Remaining);
        Assert.Equal(1, (await Store.CountTasksAsync(id, None)).Succeeded);
    }

    [Fact]
    public async Task Concurrent_commits_of_every_task_count_each_task_once_and_reach_zero_once()
    {
        const int tasks = 20;
        var id = await CreateAsync(tasks);

        // Every task is committed by two deliveries at once.
        var results = await Task.WhenAll(Enumerable.Range(0, tasks * 2).Select(i => Task.Run(() =>
            Store.CommitTaskAsync(id, i % tasks, Succeeded(), [Row(i % tasks, 1)], None))));

        Assert.Equal(tasks, results.Count(r => r.Committed));
        Assert.Single(results, r => r.Committed && r.Remaining == 0);
        Assert.Equal(tasks, (await Store.GetProvenanceAsync(id, None)).Count);
        Assert.Equal(0, (await Store.GetRunAsync(id, None))!.Remaining);
    }

    [Fact]
    public async Task A_split_adds_queued_children_after_the_last_task_once_and_counts_them_as_remaining()
    {
        var id = await CreateAsync(3);
        var outcome = new TaskOutcome(TaskState.Failed, 2, "bad input", Now);

        var first = await Store.SplitTaskAsync(id, 1, outcome, [Row(1, 1)], [Child(0) with { Attempts = 7, Worker = "ignored" }, Child(1)], None);
        var second = await Store.SplitTaskAsync(id, 1, outcome, [Row(1, 2)], [Child(2)], None);
        var commitAfter = await Store.CommitTaskAsync(id, 1, Succeeded(), [], None);

        Assert.Equal((true, 4), (first.Committed, first.Remaining)); // 3 - the split one + 2 children
        Assert.Equal([3, 4], first.Children);
        Assert.Equal((false, 4), (second.Committed, second.Remaining));
        Assert.Empty(second.Children);
        Assert.Equal((false, 4), commitAfter);
        var tasks = await Store.GetTasksAsync(id, None);
        Assert.Equal([0, 1, 2, 3, 4], tasks.Select(t => t.Index));
        Assert.Equal((TaskState.Split, "bad input", 1), (tasks[1].State, tasks[1].Error, tasks[1].Attempts));
        Assert.All(tasks.Skip(3), t => Assert.Equal((id, TaskState.Queued, (int?)1, 0, (string?)null), (t.RunId, t.State, t.ParentIndex, t.Attempts, t.Worker)));
        Assert.Equal(["child0", "child1"], tasks.Skip(3).Select(t => t.TaskId));
        Assert.Equal("in/c1", tasks[4].Inputs[0].Key);
        var counts = await Store.CountTasksAsync(id, None);
        Assert.Equal((5, 1, 1), (counts.Total, counts.Ended, counts.Split));
        Assert.Equal((5, 4), ((await Store.GetRunAsync(id, None))!.TaskCount, (await Store.GetRunAsync(id, None))!.Remaining));
        Assert.Single(await Store.GetProvenanceAsync(id, None));
        Assert.Equal(0, await Store.ClaimTaskAsync(id, 4, "w", Now, Now.AddSeconds(45), None));
    }

    [Fact]
    public async Task Concurrent_splits_of_one_task_split_it_once()
    {
        var id = await CreateAsync(2);

        var results = await Task.WhenAll(Enumerable.Range(0, Callers).Select(_ => Task.Run(() =>
            Store.SplitTaskAsync(id, 0, Failed(), [Row(0, 1)], [Child(0), Child(1), Child(2)], None))));

        var winner = Assert.Single(results, r => r.Committed);
        Assert.Equal([2, 3, 4], winner.Children);
        Assert.Equal(4, winner.Remaining);
        Assert.Equal(5, (await Store.GetTasksAsync(id, None)).Count);
        Assert.Equal((5, 4), ((await Store.GetRunAsync(id, None))!.TaskCount, (await Store.GetRunAsync(id, None))!.Remaining));
        Assert.Single(await Store.GetProvenanceAsync(id, None));
    }

    [Fact]
    public async Task Concurrent_splits_of_different_tasks_number_their_children_apart()
    {
        const int tasks = 6;
        var id = await CreateAsync(tasks);

        var results = await Task.WhenAll(Enumerable.Range(0, tasks).Select(i => Task.Run(() =>
            Store.SplitTaskAsync(id, i, Failed(), [], [Child(0), Child(1)], None))));

        var children = results.SelectMany(r => r.Children).Order().ToList();
        Assert.Equal(Enumerable.Range(tasks, tasks * 2), children);
        Assert.Single(results, r => r.Remaining == tasks * 2);
        var stored = await Store.GetTasksAsync(id, None);
        Assert.Equal(Enumerable.Range(0, tasks * 3), stored.Select(t => t.Index));
        foreach (var r in results)
        {
            Assert.All(r.Children, c => Assert.Equal(results.ToList().IndexOf(r), stored[c].ParentIndex));
        }
    }

    [Fact]
    public async Task A_commit_and_a_split_of_one_task_at_once_end_it_once()
    {
        var id = await CreateAsync(Callers);

        // Each task gets a commit and a split at once; exactly one of the two ends it.
        var commitsRunning = Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() => Store.CommitTaskAsync(id, i, Succeeded(), [Row(i, 1)], None))));
        var splitsRunning = Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() => Store.SplitTaskAsync(id, i, Failed(), [Row(i, 1)], [Child(0)], None))));
        var commits = await commitsRunning;
        var splits = await splitsRunning;

        for (var i = 0; i < Callers; i++)
        {
            Assert.True(commits[i].Committed ^ splits[i].Committed);
        }

        var split = splits.Count(s => s.Committed);
        var run = await Store.GetRunAsync(id, None);
        Assert.Equal((Callers + split, split), (run!.TaskCount, run.Remaining));
        Assert.Equal(Callers, (await Store.GetProvenanceAsync(id, None)).Count);
    }

    [Fact]
    public async Task Only_one_gather_job_begins_once_every_task_ended_and_the_same_job_may_begin_again()
    {
        var id = await CreateAsync(1);
        Assert.False(await Store.TryBeginGatherAsync(id, "job-early", None));
        await Store.CommitTaskAsync(id, 0, Succeeded(), [], None);

        var begun = await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() => Store.TryBeginGatherAsync(id, "job-" + i, None))));

        Assert.Single(begun, b => b);
        var winner = "job-" + Array.IndexOf(begun, true);
        Assert.True(await Store.TryBeginGatherAsync(id, winner, None));
        Assert.False(await Store.TryBeginGatherAsync(id, "job-late", None));
        Assert.Equal(RunState.Gathering, (await Store.GetRunAsync(id, None))!.State);

        await Store.FinishRunAsync(id, RunState.Succeeded, null, Now, None);
        Assert.False(await Store.TryBeginGatherAsync(id, winner, None));
    }

    [Fact]
    public async Task A_stopped_run_still_gathers_once_its_tasks_have_ended()
    {
        var id = await CreateAsync(1);
        await Store.RequestStopAsync(id, StopReasons.Cancel("me"), None);
        await Store.CommitTaskAsync(id, 0, new TaskOutcome(TaskState.Cancelled, null, "not started", Now), [], None);

        Assert.True(await Store.TryBeginGatherAsync(id, "job", None));
    }

    [Fact]
    public async Task A_run_finishes_once_and_keeps_its_first_ending()
    {
        var id = await CreateAsync(1);

        await Store.FinishRunAsync(id, RunState.Failed, "first", Now.AddMinutes(1), None);
        await Store.FinishRunAsync(id, RunState.Succeeded, null, Now.AddMinutes(2), None);

        var run = await Store.GetRunAsync(id, None);
        Assert.Equal((RunState.Failed, "first", (DateTimeOffset?)Now.AddMinutes(1)), (run!.State, run.Error, run.FinishedAt));
        Assert.Single((await Store.QueryRunsAsync(new RunQuery(State: RunState.Failed, Limit: 1000), None)).Items, r => r.RunId == id);
    }

    [Fact]
    public async Task Provenance_reads_back_by_task_then_step_in_the_order_recorded_then_attempt()
    {
        var id = await CreateAsync(3);

        // Steps recorded in workflow order (trim before align), not in name order; task 2 commits first.
        await Store.CommitTaskAsync(id, 2, Succeeded(), [Row(2, 1, "trim"), Row(2, 1, "align")], None);
        await Store.CommitTaskAsync(id, 0, Succeeded(), [Row(0, 1, "trim"), Row(0, 1, "align"), Row(0, 2, "trim"), Row(0, 2, "align")], None);
        await Store.SplitTaskAsync(id, 1, Failed(), [Row(1, 2, "trim"), Row(1, 1, "trim")], [Child(0)], None);

        var rows = await Store.GetProvenanceAsync(id, None);

        Assert.Equal(
            ["0 trim 1", "0 trim 2", "0 align 1", "0 align 2", "1 trim 1", "1 trim 2", "2 trim 1", "2 align 1"],
            rows.Select(r => $"{r.TaskIndex} {r.Step} {r.Attempt}"));
        Assert.Equal(["k"], rows[0].Inputs.Select(f => f.Key));
    }

    [Fact]
    public async Task A_committed_provenance_row_reads_back_whole_and_as_committed_even_when_the_committers_object_changes_after()
    {
        var id = await CreateAsync(1);
        var row = Row(0, 1);
        row.ExitCode = 0;
        row.Image = "pipelines-samples/fastq-stats:1";
        row.ImageDigest = "sha256:ab";
        row.Log = "logs/0.log";
        row.Outputs = [new FileRef { Key = "out/0/stats.tsv", Size = 42, Sha256 = "cd" }];
        await Store.CommitTaskAsync(id, 0, Succeeded(), [row], None);

        row.Step = "changed";
        row.Outputs.Clear();
        var read = Assert.Single(await Store.GetProvenanceAsync(id, None));

        Assert.Equal(("stats", (long?)0, "pipelines-samples/fastq-stats:1", "sha256:ab", "logs/0.log", Now.UtcDateTime), (read.Step, read.ExitCode, read.Image, read.ImageDigest, read.Log, read.FinishedAt));
        Assert.Equal([("out/0/stats.tsv", 42L, "cd")], read.Outputs.Select(f => (f.Key, f.Size, f.Sha256)));
        Assert.Equal([("k", 1L, "s")], read.Inputs.Select(f => (f.Key, f.Size, f.Sha256)));
        Assert.Equal(["x"], read.Command);
    }

    [Fact]
    public async Task Provenance_with_one_attempt_and_step_twice_is_refused_and_the_task_stays_open()
    {
        var id = await CreateAsync(1);
        IReadOnlyList<ProvenanceRow> twice = [Row(0, 1, "trim"), Row(0, 1, "trim")];

        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitTaskAsync(id, 0, Succeeded(), twice, None));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.SplitTaskAsync(id, 0, Failed(), twice, [Child(0)], None));

        Assert.Equal(TaskState.Queued, (await Store.GetTaskAsync(id, 0, None))!.State);
        Assert.Empty(await Store.GetProvenanceAsync(id, None));
        Assert.Equal((true, 0), await Store.CommitTaskAsync(id, 0, Succeeded(), [Row(0, 1, "trim")], None));
    }

    [Fact]
    public async Task Runs_are_queried_newest_first_by_workflow_and_state_one_page_at_a_time()
    {
        // Workflow names are new per test, so that a shared store's other runs do not match.
        var even = NewId();
        var odd = NewId();
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var id = NewId();
            ids.Add(id);
            await Store.CreateRunAsync(Run(id) with { WorkflowName = i % 2 == 0 ? even : odd, CreatedAt = Now.AddMinutes(i) }, Tasks(id, 1), None);
        }

        await Store.FinishRunAsync(ids[4], RunState.Succeeded, null, Now.AddHours(1), None);

        var first = await Store.QueryRunsAsync(new RunQuery(Workflow: even, Offset: 0, Limit: 2), None);
        Assert.Equal(3, first.Total);
        Assert.Equal([ids[4], ids[2]], first.Items.Select(r => r.RunId));
        var last = await Store.QueryRunsAsync(new RunQuery(Workflow: even, Offset: 2, Limit: 2), None);
        Assert.Equal(3, last.Total);
        Assert.Equal([ids[0]], last.Items.Select(r => r.RunId));
        var beyond = await Store.QueryRunsAsync(new RunQuery(Workflow: even, Offset: 9, Limit: 2), None);
        Assert.Equal((3, 0), (beyond.Total, beyond.Items.Count));
        var evenRunning = await Store.QueryRunsAsync(new RunQuery(Workflow: even, State: RunState.Running), None);
        Assert.Equal([ids[2], ids[0]], evenRunning.Items.Select(r => r.RunId));
        Assert.Equal(2, evenRunning.Total);
        Assert.Equal([ids[3], ids[1]], (await Store.QueryRunsAsync(new RunQuery(Workflow: odd), None)).Items.Select(r => r.RunId));
        var all = await Store.QueryRunsAsync(new RunQuery(Limit: 10_000), None);
        Assert.True(all.Total >= 5);
        Assert.Equal(all.Total, all.Items.Count);
        Assert.Equal(all.Items.OrderByDescending(r => r.CreatedAt).Select(r => r.RunId), all.Items.Select(r => r.RunId));
    }

    [Fact]
    public async Task Runs_are_queried_since_a_time_as_RunQuery_Matches_says()
    {
        var workflow = NewId();
        var ids = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            var id = NewId();
            ids.Add(id);
            await Store.CreateRunAsync(Run(id) with { WorkflowName = workflow, CreatedAt = Now.AddMinutes(i) }, Tasks(id, 1), None);
        }

        var query = new RunQuery(Workflow: workflow, Since: Now.AddMinutes(2));
        var page = await Store.QueryRunsAsync(query, None);

        // At the time itself is since it; the store's WHERE and the rule in C# agree.
        Assert.Equal([ids[3], ids[2]], page.Items.Select(r => r.RunId));
        Assert.Equal(2, page.Total);
        Assert.Equal([false, false, true, true], ids.Select((_, i) => query.Matches(workflow, RunState.Running, Now.AddMinutes(i))));
        Assert.Empty((await Store.QueryRunsAsync(new RunQuery(Workflow: workflow, Since: Now.AddHours(1)), None)).Items);
    }

    [Fact]
    public async Task A_held_queued_task_is_counted_held_by_reason_and_keeps_its_first_time_until_a_claim_clears_it()
    {
        var id = await CreateAsync(4);
        var first = new TaskHold(HoldReasons.OwnerLoad, "the owner's load (85%) is above Harvest:StartBelow (50%)", "host:1", Now);

        Assert.True(await Store.HoldTaskAsync(id, 0, first, None));
        Assert.True(await Store.HoldTaskAsync(id, 1, first, None));
        Assert.True(await Store.HoldTaskAsync(id, 1, first with { Detail = "this worker is draining", Worker = "host:2", Since = Now.AddMinutes(1) }, None));
        Assert.True(await Store.HoldTaskAsync(id, 2, first with { Reason = "quota" }, None));

        var counts = await Store.CountTasksAsync(id, None);
        Assert.Equal((4, 3), (counts.Queued, counts.Held));
        Assert.Equal(new Dictionary<string, int> { [HoldReasons.OwnerLoad] = 2, ["quota"] = 1 }, counts.HeldBecause);
        Assert.Equal(new TaskCounts(4, 0, 0, 0, 0, 0) { HeldBecause = new Dictionary<string, int> { ["quota"] = 1, [HoldReasons.OwnerLoad] = 2 } }, counts);
        Assert.NotEqual(new TaskCounts(4, 0, 0, 0, 0, 0), counts);
        Assert.Equal(first with { Detail = "this worker is draining", Worker = "host:2" }, (await Store.GetTaskAsync(id, 1, None))!.Hold);
        Assert.Null((await Store.GetTaskAsync(id, 3, None))!.Hold);

        // A claim clears it; an ended task is no longer held, and cannot be held again.
        await Store.ClaimTaskAsync(id, 0, "w", Now, Now.AddSeconds(45), None);
        await Store.CommitTaskAsync(id, 1, new TaskOutcome(TaskState.Cancelled, null, "stopped", Now), [], None);
        Assert.Null((await Store.GetTaskAsync(id, 0, None))!.Hold);
        Assert.Null((await Store.GetTaskAsync(id, 1, None))!.Hold);
        Assert.False(await Store.HoldTaskAsync(id, 0, first, None));
        Assert.False(await Store.HoldTaskAsync(id, 1, first, None));
        Assert.Equal(new Dictionary<string, int> { ["quota"] = 1 }, (await Store.CountTasksAsync(id, None)).HeldBecause);
    }

    [Fact]
    public async Task Holding_a_task_of_an_unknown_run_or_index_says_no()
    {
        var id = await CreateAsync(1);
        var hold = new TaskHold(HoldReasons.OwnerLoad, "busy", "w", Now);

        Assert.False(await Store.HoldTaskAsync(NewId(), 0, hold, None));
        Assert.False(await Store.HoldTaskAsync(id, 5, hold, None));
    }

    [Fact]
    public async Task Runs_created_at_the_same_time_are_queried_by_run_id()
    {
        var workflow = NewId();
        var ids = new[] { "b" + NewId(), "a" + NewId(), "c" + NewId() };
        foreach (var id in ids)
        {
            await Store.CreateRunAsync(Run(id) with { WorkflowName = workflow }, Tasks(id, 1), None);
        }

        var page = await Store.QueryRunsAsync(new RunQuery(Workflow: workflow), None);

        Assert.Equal(ids.Order(StringComparer.Ordinal), page.Items.Select(r => r.RunId));
    }

    [Fact]
    public async Task Tasks_are_queried_by_state_and_index_one_page_at_a_time()
    {
        var id = await CreateAsync(5);
        await Store.ClaimTaskAsync(id, 3, "w", Now, Now.AddSeconds(45), None);
        await Store.ClaimTaskAsync(id, 1, "w", Now, Now.AddSeconds(45), None);

        var page = await Store.QueryTasksAsync(id, new TaskQuery(Offset: 1, Limit: 2), None);
        var running = await Store.QueryTasksAsync(id, new TaskQuery(State: TaskState.Running), None);
        var runningSecond = await Store.QueryTasksAsync(id, new TaskQuery(State: TaskState.Running, Offset: 1, Limit: 5), None);
        var failed = await Store.QueryTasksAsync(id, new TaskQuery(State: TaskState.Failed), None);

        Assert.Equal(5, page.Total);
        Assert.Equal([1, 2], page.Items.Select(t => t.Index));
        Assert.Equal(2, running.Total);
        Assert.Equal([1, 3], running.Items.Select(t => t.Index));
        Assert.Equal(2, runningSecond.Total);
        Assert.Equal([3], runningSecond.Items.Select(t => t.Index));
        Assert.Equal((0, 0), (failed.Total, failed.Items.Count));
    }

    [Fact]
    public async Task Counts_cover_every_task_state()
    {
        var id = await CreateAsync(8);
        await Store.ClaimTaskAsync(id, 1, "w", Now, Now.AddSeconds(45), None);
        await Store.CommitTaskAsync(id, 2, Succeeded(), [], None);
        await Store.CommitTaskAsync(id, 3, Failed(), [], None);
        await Store.CommitTaskAsync(id, 4, new TaskOutcome(TaskState.Cached, 0, null, Now), [], None);
        await Store.CommitTaskAsync(id, 5, new TaskOutcome(TaskState.Cancelled, null, "stopped", Now), [], None);
        await Store.SplitTaskAsync(id, 6, Failed(), [], [Child(0)], None);

        var counts = await Store.CountTasksAsync(id, None);

        Assert.Equal(new TaskCounts(Queued: 3, Running: 1, Succeeded: 1, Failed: 1, Cached: 1, Cancelled: 1) { Split = 1 }, counts);
        Assert.Equal((9, 5), (counts.Total, counts.Ended));
        Assert.Equal(4, (await Store.GetRunAsync(id, None))!.Remaining);
    }

    private static string NewId() => TestEnvironment.NewName("r");

    private async Task<string> CreateAsync(int tasks)
    {
        var id = NewId();
        await Store.CreateRunAsync(Run(id), Tasks(id, tasks), None);
        return id;
    }

    private static RunRecord Run(string id) =>
        new(id, "wf", "version: 1", "{}", "/tmp/out/" + id + "/", RunState.Running, 0, 0, Now, null, null, null);

    private static List<TaskRecord> Tasks(string id, int count) => Enumerable.Range(0, count).Select(i => new TaskRecord(
        id, i, $"id{i:D4}", TaskState.Queued, [new InputFile($"in/f{i}.fastq", 10 + i, "abc")],
        new Dictionary<string, string> { ["sample"] = $"s{i}" }, 0, null, null, null, null, null)).ToList();

    private static TaskRecord Child(int i) =>
        new("ignored", -1, $"child{i}", TaskState.Failed, [new InputFile($"in/c{i}", 1, "h")], new Dictionary<string, string>(), 0, null, null, null, null, null);

    private static async IAsyncEnumerable<TaskRecord> ThenThrow(IAsyncEnumerable<TaskRecord> tasks)
    {
        await foreach (var t in tasks)
        {
            yield return t;
        }

        throw new PipelinesException("the output location cannot be written", retryHelps: false);
    }

    private static async IAsyncEnumerable<TaskRecord> Stream(IEnumerable<TaskRecord> tasks)
    {
        foreach (var t in tasks)
        {
            await Task.Yield();
            yield return t;
        }
    }

    private static TaskOutcome Succeeded() => new(TaskState.Succeeded, 0, null, Now);

    private static TaskOutcome Failed() => new(TaskState.Failed, 2, "bad input", Now);

    private static ProvenanceRow Row(int index, int attempt, string step = "stats") => new()
    {
        TaskId = $"id{index:D4}",
        TaskIndex = index,
        Attempt = attempt,
        Step = step,
        Status = "succeeded",
        Command = ["x"],
        Inputs = [new FileRef { Key = "k", Size = 1, Sha256 = "s" }],
        StartedAt = Now.UtcDateTime,
        FinishedAt = Now.UtcDateTime,
    };
}

/// <summary>The contract against the embedded mode's store, a new one per test.</summary>
[Unit]
public sealed class InMemoryRunStoreContractTests : RunStoreContract
{
    protected override IRunStore Store { get; } = new InMemoryRunStore();
}

/// <summary>The contract against the real PostgreSQL that scripts/test starts, in a schema of this class's own.</summary>
[Integration]
public sealed class PostgresRunStoreContractTests(PostgresRunStoreContractTests.Schema schema) : RunStoreContract, IClassFixture<PostgresRunStoreContractTests.Schema>
{
    protected override IRunStore Store => schema.Store;

    /// <summary>A fresh schema for the class, dropped when its tests have run.</summary>
    public sealed class Schema : IAsyncLifetime
    {
        public string Name { get; } = TestEnvironment.NewName("t_");

        public NpgsqlDataSource Db { get; private set; } = null!;

        public IRunStore Store { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            Db = await TestEnvironment.PostgresAsync();
            await new PostgresSchema(Db, Name).CreateAsync(CancellationToken.None);
            Store = new PostgresRunStore(Db, Name);
        }

        public async Task DisposeAsync()
        {
            await using (var cmd = Db.CreateCommand($"DROP SCHEMA {Name} CASCADE"))
            {
                await cmd.ExecuteNonQueryAsync();
            }

            await Db.DisposeAsync();
        }
    }
}
