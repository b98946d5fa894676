using System.Reflection;
using System.Runtime.ExceptionServices;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Queue;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Worker.Parts;

/// <summary>
/// A job of several tasks (docs/decisions.md, "Several tasks per Hangfire job") on the task
/// shell's parts: each task walked through its own delivery, a redelivery that counts nothing
/// twice, Hangfire's giving up that ends each open task, the job's time that hands the rest back,
/// and a cancel that stops the job's remaining tasks. The same end to end, with a worker killed in
/// the middle of such a job: WorkerCrashTests.
/// </summary>
[Unit]
public sealed class SeveralTasksPerJobTests
{
    private const string OneStep = """
          - name: count
            image: scripted:1
            command: ["count", "{inputs}"]
            outputs: ["*.tsv"]
            reuse: false
        """;

    private static readonly (string, string)[] FiveFiles = [("a.txt", "a\n"), ("b.txt", "b\n"), ("c.txt", "c\n"), ("d.txt", "d\n"), ("e.txt", "e\n")];

    private static readonly ScriptedRuntime.Script WritesMade = async (_, outDir, ct) =>
    {
        await File.WriteAllTextAsync(Path.Combine(outDir, "r.tsv"), "made\n", ct);
        return ScriptedRuntime.Exit(0);
    };

    [Fact]
    public async Task A_job_walks_each_of_its_tasks_through_its_own_delivery_and_its_redelivery_counts_none_twice()
    {
        using var rig = new WorkerRig(WritesMade);
        var run = await rig.SubmitAsync(OneStep, FiveFiles);

        await rig.Runner.RunAsync(run.RunId, [0, 1, 2, 3, 4], CancellationToken.None);

        var tasks = await rig.Runs.GetTasksAsync(run.RunId, CancellationToken.None);
        Assert.All(tasks, t => Assert.Equal(TaskState.Succeeded, t.State));
        Assert.Equal(5, rig.Runtime.Runs);
        var rows = await rig.RowsAsync(run.RunId);
        Assert.Equal([0, 1, 2, 3, 4], rows.Select(r => r.TaskIndex));
        Assert.All(rows, r => Assert.Equal(("succeeded", 1), (r.Status, r.Attempt)));
        Assert.All(tasks, t => Assert.True(rig.Objects.Contains($"out/.cache/{t.TaskId}.json"), $"task {t.Index}'s cache entry"));
        Assert.Equal(0, (await rig.Runs.GetRunAsync(run.RunId, CancellationToken.None))!.Remaining);
        Assert.Equal([run.RunId], rig.Queue.Gathers);

        // Delivered again (its worker died after the last commit): every task has ended, nothing runs or counts again.
        await rig.Runner.RunAsync(run.RunId, [0, 1, 2, 3, 4], CancellationToken.None);
        Assert.Equal(5, rig.Runtime.Runs);
        Assert.Equal(5, (await rig.RowsAsync(run.RunId)).Count);
        Assert.Equal(0, (await rig.Runs.GetRunAsync(run.RunId, CancellationToken.None))!.Remaining);
        Assert.Empty(rig.Queue.Tasks);
    }

    [Fact]
    public async Task A_job_delivered_again_after_some_of_its_tasks_ended_runs_only_the_rest()
    {
        using var rig = new WorkerRig(WritesMade);
        var run = await rig.SubmitAsync(OneStep, FiveFiles);
        await rig.DeliverAsync(run.RunId, 0);
        await rig.DeliverAsync(run.RunId, 1);

        await rig.Runner.RunAsync(run.RunId, [0, 1, 2, 3, 4], CancellationToken.None);

        Assert.Equal(5, rig.Runtime.Runs);
        Assert.Equal([0, 1, 2, 3, 4], (await rig.RowsAsync(run.RunId)).Select(r => r.TaskIndex));
        Assert.Equal(0, (await rig.Runs.GetRunAsync(run.RunId, CancellationToken.None))!.Remaining);
    }

    [Fact]
    public async Task Hangfire_giving_up_on_a_job_ends_each_of_its_open_tasks_with_the_reason_and_leaves_the_ended_ones()
    {
        using var rig = new WorkerRig(WritesMade);
        var run = await rig.SubmitAsync(OneStep, FiveFiles);
        await rig.DeliverAsync(run.RunId, 0);
        IEndsWhenGivenUp job = new TaskJob(rig.Runner);

        await job.GiveUpAsync([run.RunId, new[] { 0, 1, 2 }, null], "gave up after 4 deliveries: the store is out of reach", CancellationToken.None);

        var tasks = await rig.Runs.GetTasksAsync(run.RunId, CancellationToken.None);
        Assert.Equal(TaskState.Succeeded, tasks[0].State);
        Assert.All(tasks.Skip(1).Take(2), t => Assert.Equal((TaskState.Failed, "gave up after 4 deliveries: the store is out of reach"), (t.State, t.Error)));
        Assert.All(tasks.Skip(3), t => Assert.Equal(TaskState.Queued, t.State));
        Assert.Equal(2, (await rig.Runs.GetRunAsync(run.RunId, CancellationToken.None))!.Remaining);

        // A job of one task, as Hangfire stored it before jobs of several, is ended the same way.
        await job.GiveUpAsync([run.RunId, 3, null], "gave up", CancellationToken.None);
        Assert.Equal(TaskState.Failed, (await rig.TaskAsync(run.RunId, 3)).State);
    }

    [Fact]
    public async Task A_task_whose_delivery_throws_what_no_retry_helps_does_not_hold_the_rest_of_its_job()
    {
        // Task 1's end cannot be written (as PostgreSQL refused a NUL in its reason: no outage, so
        // Hangfire's retries would not help), once: the job's other tasks still run now, and the
        // task ends failed at once with the reason instead of after every retry of the whole job.
        var refused = 0;
        InMemoryRunStore? inner = null;
        using var rig = new WorkerRig(WritesMade, more: services => services.AddSingleton<IRunStore>(_ => RefusingCommit.Wrap(() => inner!, (index, outcome) =>
            index == 1 && outcome.State == TaskState.Succeeded && Interlocked.Increment(ref refused) == 1
                ? new InvalidOperationException("22021: invalid byte sequence for encoding \"UTF8\": 0x00")
                : null)));
        inner = rig.Runs;
        var run = await rig.SubmitAsync(OneStep, FiveFiles);

        await rig.Runner.RunAsync(run.RunId, [0, 1, 2], CancellationToken.None);

        var tasks = await rig.Runs.GetTasksAsync(run.RunId, CancellationToken.None);
        Assert.Equal([TaskState.Succeeded, TaskState.Failed, TaskState.Succeeded], tasks.Take(3).Select(t => t.State));
        Assert.Equal("InvalidOperationException: 22021: invalid byte sequence for encoding \"UTF8\": 0x00", tasks[1].Error);
        Assert.Equal(3, rig.Runtime.Runs);
        Assert.Equal(2, (await rig.Runs.GetRunAsync(run.RunId, CancellationToken.None))!.Remaining);
    }

    [Fact]
    public async Task A_duplicate_delivery_that_throws_leaves_a_task_another_worker_holds_to_that_worker()
    {
        // Task 1 runs on another worker under a live lease when a second job delivers it here and
        // the delivery throws (the claim refused, as a store that cannot write it would): its end
        // is the holder's, so this delivery ends nothing of it and goes on with the job's rest.
        InMemoryRunStore? inner = null;
        using var rig = new WorkerRig(WritesMade, more: services => services.AddSingleton<IRunStore>(_ => RefusingCommit.WrapAny(() => inner!, (name, args) =>
            name == nameof(IRunStore.ClaimTaskAsync) && (int)args[1]! == 1 && (string)args[2]! != "elsewhere"
                ? new InvalidOperationException("the claim could not be written")
                : null)));
        inner = rig.Runs;
        var run = await rig.SubmitAsync(OneStep, FiveFiles);
        var now = DateTimeOffset.UtcNow;
        Assert.NotNull(await rig.Runs.ClaimTaskAsync(run.RunId, 1, "elsewhere", now, now.AddMinutes(10), CancellationToken.None));

        await rig.Runner.RunAsync(run.RunId, [0, 1, 2], CancellationToken.None);

        var tasks = await rig.Runs.GetTasksAsync(run.RunId, CancellationToken.None);
        Assert.Equal([TaskState.Succeeded, TaskState.Running, TaskState.Succeeded], tasks.Take(3).Select(t => t.State));
        Assert.Equal("elsewhere", tasks[1].Worker);
        Assert.Equal(2, rig.Runtime.Runs);
    }

    [Fact]
    public async Task A_job_past_its_time_starts_no_further_task_and_hands_the_rest_back_to_the_dispatcher()
    {
        using var rig = new WorkerRig(WritesMade, new Dictionary<string, string?> { ["Worker:JobTime"] = "00:00:00.001" });
        var run = await rig.SubmitAsync(OneStep, FiveFiles);

        await rig.Runner.RunAsync(run.RunId, [0, 1, 2], CancellationToken.None);

        // The first task always runs; the others are handed back untouched, still queued.
        Assert.Equal(1, rig.Runtime.Runs);
        Assert.Equal(TaskState.Succeeded, (await rig.TaskAsync(run.RunId, 0)).State);
        Assert.Equal([TaskState.Queued, TaskState.Queued], [(await rig.TaskAsync(run.RunId, 1)).State, (await rig.TaskAsync(run.RunId, 2)).State]);
        Assert.Equal([(run.RunId, 1), (run.RunId, 2)], rig.Queue.Tasks);
    }

    [Fact]
    public async Task A_cancel_in_the_middle_of_a_job_stops_its_running_task_and_ends_the_rest_without_starting_them()
    {
        var started = new TaskCompletionSource();
        using var rig = new WorkerRig(async (_, outDir, ct) =>
        {
            if (started.TrySetResult())
            {
                await Task.Delay(Timeout.Infinite, ct);
            }

            await File.WriteAllTextAsync(Path.Combine(outDir, "r.tsv"), "made\n", ct);
            return ScriptedRuntime.Exit(0);
        },
        // The job's time (2 s by default) is not what this test is about: on a loaded machine the
        // cancel reached the first task after it, and the rest were handed back, still queued.
        new Dictionary<string, string?> { ["Worker:JobTime"] = "00:05:00" });
        var run = await rig.SubmitAsync(OneStep, FiveFiles);

        var delivery = rig.Runner.RunAsync(run.RunId, [0, 1, 2], CancellationToken.None);
        await started.Task;
        await rig.Runs.RequestStopAsync(run.RunId, StopReasons.Cancel("a test"), CancellationToken.None);
        await delivery;

        Assert.Equal(1, rig.Runtime.Runs);
        var tasks = await rig.Runs.GetTasksAsync(run.RunId, CancellationToken.None);
        Assert.Equal(TaskState.Cancelled, tasks[0].State);
        Assert.All(tasks.Skip(1).Take(2), t => Assert.Equal((TaskState.Cancelled, "not started: cancelled by a test"), (t.State, t.Error)));
        Assert.Equal(["cancelled"], (await rig.RowsAsync(run.RunId)).Select(r => r.Status));
    }

    [Fact]
    public async Task A_job_cancelled_between_its_tasks_stops_there_and_leaves_the_rest_for_its_redelivery()
    {
        using var stop = new CancellationTokenSource();
        using var rig = new WorkerRig(async (_, outDir, ct) =>
        {
            await File.WriteAllTextAsync(Path.Combine(outDir, "r.tsv"), "made\n", ct);
            await stop.CancelAsync();
            return ScriptedRuntime.Exit(0);
        });
        var run = await rig.SubmitAsync(OneStep, FiveFiles);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => rig.Runner.RunAsync(run.RunId, [0, 1, 2], stop.Token));

        // The worker shut down during task 0: it ended (or is left for the redelivery); 1 and 2 never started.
        Assert.Equal(1, rig.Runtime.Runs);
        Assert.Equal([TaskState.Queued, TaskState.Queued], [(await rig.TaskAsync(run.RunId, 1)).State, (await rig.TaskAsync(run.RunId, 2)).State]);

        await rig.Runner.RunAsync(run.RunId, [0, 1, 2], CancellationToken.None);
        var tasks = await rig.Runs.GetTasksAsync(run.RunId, CancellationToken.None);
        Assert.All(tasks.Take(3), t => Assert.Equal(TaskState.Succeeded, t.State));
        Assert.Equal([0, 1, 2], (await rig.RowsAsync(run.RunId)).Select(r => r.TaskIndex).Distinct());
    }

    /// <summary>A run store whose commit of a task throws what <c>refuse</c> names (a store that cannot write that end), else the store it wraps.</summary>
    public class RefusingCommit : DispatchProxy
    {
        private Func<IRunStore> _inner = null!;
        private Func<string, object?[], Exception?> _refuse = null!;

        public static IRunStore Wrap(Func<IRunStore> inner, Func<int, TaskOutcome, Exception?> refuse) =>
            WrapAny(inner, (name, args) => name == nameof(IRunStore.CommitTaskAsync) ? refuse((int)args[1]!, (TaskOutcome)args[2]!) : null);

        /// <summary>Any call of the store, by its method's name and arguments, may be refused.</summary>
        public static IRunStore WrapAny(Func<IRunStore> inner, Func<string, object?[], Exception?> refuse)
        {
            var proxy = Create<IRunStore, RefusingCommit>();
            var self = (RefusingCommit)(object)proxy;
            (self._inner, self._refuse) = (inner, refuse);
            return proxy;
        }

        protected override object? Invoke(MethodInfo? method, object?[]? args)
        {
            if (_refuse(method!.Name, args ?? []) is { } refused)
            {
                throw refused;
            }

            try
            {
                return method.Invoke(_inner(), args);
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                ExceptionDispatchInfo.Throw(e.InnerException);
                throw;
            }
        }
    }
}
