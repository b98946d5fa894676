using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Harvest;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Queue;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Telemetry;
using Pipelines.Usage;

namespace Pipelines.Worker;

/// <summary>
/// The task shell: one delivery of one task. The parts decide how it went (the cache whether
/// an earlier result can be reused, staging and the step loop how the steps went, the batch
/// split whether a failed batch splits), and this shell alone writes the end to the run store
/// and acts on it: the cache entry, the stop of an on_error: fail run, the children of a split,
/// the fan-in to the gather. Whatever throws that no retry helps ends the task failed here, with
/// the reason. Hangfire delivers at least once, so every part is safe to repeat: output keys are
/// deterministic, and the commit is a conditional update that a second delivery cannot repeat.
/// </summary>
internal sealed partial class TaskRunner : ITaskHandler
{
    private readonly IRunStore _store;
    private readonly ITaskQueue _queue;
    private readonly ObjectStoreFactory _stores;
    private readonly RunDefinitions _definitions;
    private readonly TaskCache _cache;
    private readonly Staging _staging;
    private readonly StepLoop _steps;
    private readonly WorkerOptions _options;
    private readonly OutageGate _gate;
    private readonly TimeProvider _time;
    private readonly ILogger<TaskRunner> _log;
    private readonly WarmSteps _warmSteps;
    private readonly Harvester? _harvester;
    private readonly IUsageStore _usage;
    private readonly TaskFolders _folders;

    internal TaskRunner(IRunStore store, ITaskQueue queue, ObjectStoreFactory stores, RunDefinitions definitions, TaskCache cache, Staging staging, StepLoop steps, WarmSteps warmSteps, WorkerOptions options, TaskFolders folders, OutageGate gate, TimeProvider time, ILogger<TaskRunner> log, IUsageStore usage, Harvester? harvester = null) =>
        (_store, _queue, _stores, _definitions, _cache, _staging, _steps, _warmSteps, _options, _folders, _gate, _time, _log, _usage, _harvester) = (store, queue, stores, definitions, cache, staging, steps, warmSteps, options, folders, gate, time, log, usage, harvester);

    /// <summary>The shell with its parts, from the engine's services.</summary>
    public static TaskRunner Create(IServiceProvider services) => new(
        services.GetRequiredService<IRunStore>(),
        services.GetRequiredService<ITaskQueue>(),
        services.GetRequiredService<ObjectStoreFactory>(),
        services.GetRequiredService<RunDefinitions>(),
        services.GetRequiredService<TaskCache>(),
        services.GetRequiredService<Staging>(),
        services.GetRequiredService<StepLoop>(),
        services.GetRequiredService<WarmSteps>(),
        services.GetRequiredService<WorkerOptions>(),
        services.GetRequiredService<TaskFolders>(),
        services.GetRequiredService<OutageGate>(),
        services.GetRequiredService<TimeProvider>(),
        services.GetRequiredService<ILogger<TaskRunner>>(),
        services.GetRequiredService<IUsageStore>(),
        services.GetService<Harvester>());

    /// <summary>
    /// One delivery of a task job: its tasks, one at a time, each through the delivery of one
    /// task (<see cref="RunOneAsync"/>) with its own claim, lease, cache entry, provenance and
    /// commit (docs/decisions.md, "Several tasks per Hangfire job"). A job delivered again skips
    /// its tasks that ended (their commit is conditional) and waits out the lease of one still
    /// running elsewhere. Past <see cref="WorkerOptions.JobTime"/> it starts no further task: the
    /// rest go back to the dispatcher, to be released again in their tenant's turn, so a job of
    /// long tasks holds no queue behind one slot. A cancelled job (a shutdown) stops between tasks
    /// and is delivered again.
    /// </summary>
    public async Task RunAsync(string runId, IReadOnlyList<int> indexes, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        for (var i = 0; i < indexes.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var rest = indexes.Skip(i + 1).ToList();
            if (i > 0 && _time.GetElapsedTime(started) >= _options.JobTime)
            {
                await _queue.EnqueueTasksAsync(runId, [indexes[i], .. rest], cancellationToken).ConfigureAwait(false);
                LogJobTimeUp(_log, runId, indexes.Count - i, i, _options.JobTime.TotalSeconds);
                break;
            }

            if (!await RunOneAsync(runId, indexes[i], rest, cancellationToken).ConfigureAwait(false))
            {
                return;
            }
        }

        // The slot is free: the dispatcher may release the next job now.
        await _queue.TaskEndedAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// One delivery of one task. An outage met on the way is waited out here, in-process and
    /// with backoff (<see cref="OutageGate"/>): every step below is safe to do again. False when
    /// the worker had no room: the task was handed back, with <paramref name="rest"/> (the tasks
    /// after it in its job), and the job ends.
    /// </summary>
    private async Task<bool> RunOneAsync(string runId, int index, IReadOnlyList<int> rest, CancellationToken cancellationToken)
    {
        // Admission (docs/harvesting.md): a task starts only when the machine's owner leaves room.
        // Without room within the hold it is handed back to the queue, as a new job for any
        // machine, rather than kept here; the task itself is untouched (still queued), so a
        // crash after the enqueue leaves two jobs, and the claim lets only one of them run it.
        using var scope = LogScopes.Task(_log, runId, index);
        using var slot = _harvester is null ? null : await AdmitAsync(_harvester, runId, index, cancellationToken).ConfigureAwait(false);
        if (_harvester is not null && slot is null)
        {
            await _queue.EnqueueTasksAsync(runId, [index, .. rest], cancellationToken).ConfigureAwait(false);
            LogHandedBack(_log, runId, index, _harvester.Why());

            // This worker stays off the queue until it has room again, for at most another hold:
            // ended now, its Hangfire worker, free first, would fetch the job just handed back
            // before any other machine's next poll, and hand it back again, for as long as the
            // owner stays busy, while a machine with room never got it.
            try
            {
                await _harvester.RoomAsync(_harvester.AdmissionHold, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Shutting down: the task is already back in the queue.
            }

            return false;
        }

        try
        {
            await _gate.RunAsync(
                async () =>
                {
                    await DeliverAsync(runId, index, cancellationToken).ConfigureAwait(false);
                    return true;
                },
                OutageGate.IsOutage,
                $"run {runId} task {index}",
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && !OutageGate.IsOutage(e))
        {
            // What is not an outage no retry helps (an end the run store refuses to write, a task
            // the run does not have): the task ends failed now with the reason, as DecideAsync ends
            // one whose run threw, rather than after every retry of its job (about 48 minutes),
            // while the tasks after it in a job of several waited and then ended with its reason.
            if (await HeldElsewhereAsync(runId, index, PipelinesException.Describe(e), cancellationToken).ConfigureAwait(false))
            {
                return true;
            }

            await EndFailedAsync(runId, index, PipelinesException.Describe(e), cancellationToken).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>
    /// A slot for the task, as the harvester admits it. Without room at once the task is marked
    /// held in the run store, with the harvester's reason, before the wait: a user sees it
    /// (status, runs, the run page) instead of a run that does not end; the claim clears it. A
    /// task of a run that stops needs no room: its delivery ends it cancelled without a
    /// container, so a cancel ends a run whose tasks no machine has room for.
    /// </summary>
    private async Task<IDisposable?> AdmitAsync(Harvester harvester, string runId, int index, CancellationToken ct)
    {
        if (await harvester.AdmitAsync(TimeSpan.Zero, ct).ConfigureAwait(false) is { } slot)
        {
            return slot;
        }

        // Held from here until admitted: the mark for users (below) and the metric are set at this one place, with one reason.
        var reason = harvester.HoldReason;
        using var held = EngineMetrics.Held(reason);
        var why = harvester.Why();
        try
        {
            if (await _store.GetRunAsync(runId, ct).ConfigureAwait(false) is not { } run || run.StopReason is not null || run.State.IsTerminal())
            {
                return NoRoomNeeded.Instance;
            }

            await _store.HoldTaskAsync(runId, index, new TaskHold(reason, why, _options.Name, _time.GetUtcNow()), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (OutageGate.IsOutage(e) && !ct.IsCancellationRequested)
        {
            // The look and the mark are for users, not for running the task: an outage fails no
            // delivery here (the wait below, and the delivery's own gate, ride it out).
            LogHoldNotMarked(_log, runId, index, e.Message);
        }

        return await harvester.AdmitAsync(harvester.AdmissionHold, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Ends a task failed with <paramref name="reason"/> when its job can be delivered no more
    /// (Hangfire gave up: see EndWhenJobFails), with the same consequences as any failure.
    /// </summary>
    public async Task EndFailedAsync(string runId, int index, string reason, CancellationToken cancellationToken)
    {
        var run = await _store.GetRunAsync(runId, cancellationToken).ConfigureAwait(false);
        var task = await _store.GetTaskAsync(runId, index, cancellationToken).ConfigureAwait(false);
        if (run is null || task is null || run.State.IsTerminal() || task.State.IsTerminal())
        {
            return;
        }

        LogTaskError(_log, runId, index, reason);
        var remaining = await SettleAsync(run, task, Definition(run), Failed(reason), cancellationToken).ConfigureAwait(false);
        await FanInAsync(runId, remaining, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Whether the task runs on another worker under a live lease, so that this delivery, which
    /// threw, must not end it: a second delivery of one task (a duplicate job) ends nothing of
    /// it; the holder's end is the task's, and if the holder is lost its lease runs out and a
    /// later delivery claims the task.
    /// </summary>
    private async Task<bool> HeldElsewhereAsync(string runId, int index, string error, CancellationToken ct)
    {
        if (await _store.GetTaskAsync(runId, index, ct).ConfigureAwait(false) is { State: TaskState.Running } held
            && held.Worker != _options.Name && held.LeaseUntil > _time.GetUtcNow())
        {
            LogNotEndedHeld(_log, runId, index, held.Worker ?? "", error);
            return true;
        }

        return false;
    }

    private async Task DeliverAsync(string runId, int index, CancellationToken ct)
    {
        var run = await _store.GetRunAsync(runId, ct).ConfigureAwait(false)
            ?? throw new PipelinesException($"run {runId} does not exist in the run store", retryHelps: false);
        if (run.State.IsTerminal())
        {
            return;
        }

        var task = await _store.GetTaskAsync(runId, index, ct).ConfigureAwait(false)
            ?? throw new PipelinesException($"run {runId} has no task {index}", retryHelps: false);
        // The task's span joins the run's trace, carried in its definition from the submission.
        using var span = EngineTracing.StartUnder(EngineTracing.Task, TraceParentOf(run), ActivityKind.Consumer);
        span?.SetTag("pipelines.run.id", runId).SetTag("pipelines.task.index", index).SetTag("pipelines.task.id", task.TaskId);
        var remaining = run.Remaining;
        if (task.State == TaskState.Split)
        {
            // A delivery after the split committed (the worker died before enqueuing the
            // children): enqueue the children still queued; a second job for one is harmless.
            var queued = (await _store.GetTasksAsync(runId, ct).ConfigureAwait(false))
                .Where(t => t.ParentIndex == index && t.State == TaskState.Queued).Select(t => t.Index).ToList();
            if (queued.Count > 0)
            {
                await _queue.EnqueueTasksAsync(runId, queued, ct).ConfigureAwait(false);
            }
        }
        else if (!task.State.IsTerminal())
        {
            var definition = (RunDefinition?)null;
            TaskEnd end;
            try
            {
                definition = _definitions.For(run);
                end = await DecideAsync(run, task, definition, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (!ct.IsCancellationRequested && !OutageGate.IsOutage(e))
            {
                // Something unforeseen threw (a bug, a corrupt definition, a file the engine
                // cannot handle): the task ends failed with the reason now, rather than after an
                // outage's worth of retries. Outages go on to Hangfire, and EndWhenJobFails ends
                // the task if they outlast it.
                var reason = PipelinesException.Describe(e);
                if (await HeldElsewhereAsync(runId, index, reason, ct).ConfigureAwait(false))
                {
                    return;
                }

                LogTaskError(_log, runId, index, reason);
                end = Failed(reason);
            }

            using (EngineTracing.Start(EngineTracing.Settle))
            {
                remaining = await SettleAsync(run, task, definition, end, ct).ConfigureAwait(false);
            }
        }

        using (EngineTracing.Start(EngineTracing.FanIn))
        {
            await FanInAsync(runId, remaining, ct).ConfigureAwait(false);
        }
    }

    /// <summary>How this delivery ends the task: not started (the run stops), reused, or run.</summary>
    private async Task<TaskEnd> DecideAsync(RunRecord run, TaskRecord task, RunDefinition definition, CancellationToken ct)
    {
        var runOutput = definition.Folder(_stores, run.RunId);
        if (run.StopReason is null)
        {
            // A canary's candidate always runs, and neither reads nor writes the cache: nothing of
            // it can stand in for the current image's results (docs/algorithms.md).
            CacheCheck cache;
            using (EngineTracing.Start(EngineTracing.CacheCheck))
            {
                cache = definition.IsCandidate
                    ? new CacheCheck(null, new Explain.RanBecause(Explain.RanBecause.CanaryCandidate))
                    : await _cache.CheckAsync(run, task, definition, _stores.Open(definition.Workflow.Output.Uri), runOutput, ct).ConfigureAwait(false);
            }

            if (cache.Reused is { } reused)
            {
                return new TaskEnd.Settled(new TaskOutcome(TaskState.Cached, 0, null, _time.GetUtcNow()), reused);
            }

            // The lease keeps a second delivery from running the task while this attempt runs.
            TaskLease? lease;
            using (EngineTracing.Start(EngineTracing.Claim))
            {
                lease = await TaskLease.ClaimAsync(_store, run.RunId, task.Index, _options, _time, _log, ct).ConfigureAwait(false);
            }

            if (lease is not null)
            {
                await using (lease.ConfigureAwait(false))
                {
                    using var running = EngineMetrics.Running();
                    var clock = Stopwatch.StartNew();

                    // Only a task found running when this delivery began (vacated, or its worker died) can have vacated attempts, so most cost no listing.
                    var earlier = task.State == TaskState.Running ? await VacatedAttempts.ReadAsync(runOutput, task.TaskId, ct).ConfigureAwait(false) : VacatedAttempts.None;
                    var end = await ExecuteAsync(run, task, definition, runOutput, earlier, ct).ConfigureAwait(false);
                    EngineMetrics.TaskRan(end is TaskEnd.Settled s ? s.Outcome.State.Name() : end is TaskEnd.Split ? TaskState.Split.Name() : "vacated", clock.Elapsed.TotalSeconds);
                    return RanBecause(end, cache.Miss) with { Usage = UsageOf(run, task, definition, lease, end) };
                }
            }
        }

        // The run is stopping (on_error: fail, or a cancel): a task that has not started never will.
        var reason = (await _store.GetRunAsync(run.RunId, ct).ConfigureAwait(false))?.StopReason ?? run.StopReason ?? "run stopped";
        return new TaskEnd.Settled(StopReasons.NotStarted(reason, _time.GetUtcNow()), []);
    }

    /// <summary>Why the task ran, as the cache said when it was consulted, kept on each of its rows (explain reads it).</summary>
    private static TaskEnd RanBecause(TaskEnd end, Explain.RanBecause? why)
    {
        var rows = end switch
        {
            TaskEnd.Settled settled => settled.Rows,
            TaskEnd.Split split => split.Rows,
            _ => [],
        };
        var json = why?.ToJson();
        foreach (var row in rows)
        {
            row.RanBecause = json;
        }

        return end;
    }

    /// <summary>
    /// One attempt of the task: stage in, run the steps, stage out, in a scratch folder of its
    /// own; its attempts numbered after the <paramref name="earlier"/> vacated ones.
    /// </summary>
    private async Task<TaskEnd> ExecuteAsync(RunRecord run, TaskRecord task, RunDefinition definition, StorageLocation runOutput, VacatedAttempts earlier, CancellationToken ct)
    {
        var workflow = definition.Workflow;
        var steps = Planner.Expand(workflow, definition.ImageDigests, task.Inputs, task.Captures, task.TaskId);
        var rows = new List<ProvenanceRow>();
        StepLoop.Result result;
        using (var scratch = Scratch.Take(_folders, _log))
        {
            try
            {
                var clock = Stopwatch.StartNew();
                List<FileRef> inputs;
                using (EngineTracing.Start(EngineTracing.StageIn))
                {
                    // What in/ holds is known once the stage-in has finished: the inputs' keys.
                    inputs = await _staging.StageInAsync(workflow, task, scratch.BeginStaging(), ct).ConfigureAwait(false);
                    scratch.Staged(task.Inputs.Select(i => i.Key));
                }

                var stagedIn = clock.Elapsed;
                result = await _steps.RunAsync(run, task, steps, inputs, scratch, runOutput, rows, earlier, ct).ConfigureAwait(false);
                LogTaskTimes(_log, run.RunId, task.Index, inputs.Count, stagedIn.TotalMilliseconds, (clock.Elapsed - stagedIn).TotalMilliseconds);
            }
            catch (Exception e) when (!ct.IsCancellationRequested && !OutageGate.IsOutage(e))
            {
                // Anything else that went wrong in staging or stage-out (an input deleted or
                // changed since planning, a file the engine cannot read or write, a bug): the task
                // ends failed with the reason, recorded as a failed attempt, and the run goes on.
                var reason = PipelinesException.Describe(e);
                LogTaskError(_log, run.RunId, task.Index, reason);
                var step = steps[Math.Min(rows.Count, steps.Count - 1)];
                rows.Add(_steps.Row(run, task, step, attempt: earlier.Before(step.Name) + rows.Count(r => r.Step == step.Name) + 1, "failed", null, [], [], _time.GetUtcNow(), null, reason));
                result = new StepLoop.Result(new TaskOutcome(TaskState.Failed, null, reason, _time.GetUtcNow()), Splittable: true);
            }
        }

        if (result.Vacated)
        {
            return new TaskEnd.Vacated(rows, result.VacatedLog);
        }

        return result.Outcome.State == TaskState.Failed && result.Splittable && BatchSplit.Applies(run, task, workflow)
            ? BatchSplit.Of(run, task, definition, result.Outcome, rows) with { Earlier = earlier }
            : new TaskEnd.Settled(result.Outcome, rows) { Earlier = earlier };
    }

    /// <summary>
    /// The one place a task's end is written and acted on. Returns the tasks of the run still to
    /// end, for the fan-in.
    /// </summary>
    private async Task<int> SettleAsync(RunRecord run, TaskRecord task, RunDefinition? definition, TaskEnd end, CancellationToken ct)
    {
        StampTrace(end);
        switch (end)
        {
            case TaskEnd.Split split:
                {
                    var earlier = await EarlierAsync(run, task, definition, split, ct).ConfigureAwait(false);
                    var (done, indexes, remaining) = await _store.SplitTaskAsync(run.RunId, task.Index, split.Outcome with { Usage = split.Usage }, [.. earlier.Rows, .. split.Rows], split.Children, ct).ConfigureAwait(false);
                    await RecordUnendedAsync(done, split, ct).ConfigureAwait(false);
                    if (done)
                    {
                        await RemoveVacatedAsync(run, task, definition, earlier, ct).ConfigureAwait(false);
                        Ended(TaskState.Split);
                        LogSplit(_log, run.RunId, task.Index, indexes.Count, indexes[0], indexes[^1]);

                        // At-least-once: a crash before this line is healed by the parent's next
                        // delivery, which finds it split and enqueues the children still queued.
                        await _queue.EnqueueTasksAsync(run.RunId, indexes, ct).ConfigureAwait(false);
                    }

                    return remaining;
                }

            case TaskEnd.Vacated vacated when definition is not null:
                await RecordVacatedAsync(run, task, definition, vacated, ct).ConfigureAwait(false);
                return run.Remaining;

            case TaskEnd.Settled settled:
                {
                    var earlier = await EarlierAsync(run, task, definition, settled, ct).ConfigureAwait(false);
                    var (committed, remaining) = await _store.CommitTaskAsync(run.RunId, task.Index, settled.Outcome with { Usage = settled.Usage }, [.. earlier.Rows, .. settled.Rows], ct).ConfigureAwait(false);
                    await RecordUnendedAsync(committed, settled, ct).ConfigureAwait(false);
                    if (committed)
                    {
                        await RemoveVacatedAsync(run, task, definition, earlier, ct).ConfigureAwait(false);
                        Ended(settled.Outcome.State);
                    }

                    if (committed && definition is not null && settled.Outcome.State == TaskState.Succeeded && !definition.IsCandidate)
                    {
                        await WriteCacheAsync(run, task, definition, settled.Rows, ct).ConfigureAwait(false);
                    }

                    if (committed && definition is not null && settled.Outcome.State == TaskState.Failed && definition.Workflow.OnError == OnError.Fail)
                    {
                        await _store.RequestStopAsync(run.RunId, $"task {task.Index} ({task.TaskId}) failed and on_error is fail", ct).ConfigureAwait(false);
                    }

                    return remaining;
                }

            default:
                return run.Remaining;
        }
    }

    /// <summary>
    /// Keeps a vacated attempt's rows in the run's output, under a key of their own, with the log
    /// of the step it was vacated in, for the delivery that ends the task (VacatedAttempts), and
    /// hands the task back to the queue. The lease is released already (DecideAsync's using).
    /// Done whatever cancels the job: a worker's shutdown or Hangfire's restart of its server may
    /// come in the middle of a vacate, and the attempt happened. An outage is waited out with
    /// backoff (the gate); once the job is cancelled the record has
    /// <see cref="WorkerOptions.VacateRecordGrace"/> more, so a shutdown never hangs on it. Given
    /// up, it is said in the log, and the job's redelivery takes the task. At-least-once: a crash
    /// before the enqueue leaves the lease to expire and the original job's redelivery to take the
    /// task; a redelivery beside the new job finds it claimed or ended.
    /// </summary>
    private async Task RecordVacatedAsync(RunRecord run, TaskRecord task, RunDefinition definition, TaskEnd.Vacated vacated, CancellationToken ct)
    {
        using var bound = new CancellationTokenSource();
        using var onCancel = ct.Register(() => bound.CancelAfter(_options.VacateRecordGrace));
        var output = definition.Folder(_stores, run.RunId);
        var now = _time.GetUtcNow();
        try
        {
            await _gate.RunAsync(
                async () =>
                {
                    await VacatedAttempts.WriteAsync(output, task.TaskId, vacated.Rows, vacated.Log, now, bound.Token).ConfigureAwait(false);

                    // Before the enqueue, so that the next delivery's claim finds the record (and does not take the delivery for a lost one).
                    if (vacated.Usage is { } usage)
                    {
                        await _usage.RecordAsync(usage, bound.Token).ConfigureAwait(false);
                    }

                    await _queue.EnqueueTasksAsync(run.RunId, [task.Index], bound.Token).ConfigureAwait(false);
                    return true;
                },
                OutageGate.IsOutage,
                $"run {run.RunId} task {task.Index}: recording its vacated attempt",
                bound.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (bound.IsCancellationRequested && e is not OutOfMemoryException)
        {
            LogVacatedUnrecorded(_log, run.RunId, task.Index, _options.VacateRecordGrace.TotalSeconds, PipelinesException.Describe(e));
            throw;
        }

        LogVacated(_log, run.RunId, task.Index);
    }

    /// <summary>
    /// What one delivery that ran used (Usage/TaskUsage.Of over its own rows), keyed by the lease's
    /// delivery; harvested when this worker's containers run in the kernel's idle class.
    /// </summary>
    private UsageRecord UsageOf(RunRecord run, TaskRecord task, RunDefinition definition, TaskLease lease, TaskEnd end)
    {
        var (rows, outcome, reason) = end switch
        {
            TaskEnd.Settled s => (s.Rows, s.Outcome.State switch
            {
                TaskState.Succeeded => UsageOutcomes.Succeeded,
                TaskState.Cancelled => UsageOutcomes.Cancelled,
                _ => UsageOutcomes.Failed,
            }, (string?)null),
            TaskEnd.Split s => (s.Rows, UsageOutcomes.Failed, "the batch failed and was split"),
            TaskEnd.Vacated v => (v.Rows, UsageOutcomes.Vacated, StepLoop.VacatedReason),
            _ => ([], UsageOutcomes.Failed, null),
        };
        var memory = definition.Workflow.Steps.ToDictionary(s => s.Name, s => s.Resources.MemoryBytes, StringComparer.Ordinal);
        var harvested = _harvester is not null && IdleCgroup.ClassOf(_harvester.IdleMode) == "idle";
        return TaskUsage.Of(run, task.Index, lease.Delivery, _options.Name, lease.ClaimedAt, _time.GetUtcNow(), outcome, rows, step => memory.TryGetValue(step, out var m) ? m : null, harvested, reason);
    }

    /// <summary>
    /// A delivery that ran but did not end the task (another delivery ended it first, after this
    /// one's lease was lost) still used what it used: recorded as vacated, under its own key, so
    /// nothing is counted twice and nothing is dropped.
    /// </summary>
    private async Task RecordUnendedAsync(bool ended, TaskEnd end, CancellationToken ct)
    {
        if (!ended && end.Usage is { } usage)
        {
            await _usage.RecordAsync(usage with { Outcome = UsageOutcomes.Vacated, Reason = "another delivery ended the task first" }, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Records a committed task's result in the cache for later runs. The task has ended already, so
    /// nothing here may fail it, and no redelivery would write the entry: an outage of the output's
    /// store is waited out with backoff (the gate) while the job lives; an entry that still cannot be
    /// written (a refusal, or the job cancelled during an outage) is said as a warning naming what a
    /// later run will do (run the task again), never lost without a word.
    /// </summary>
    private async Task WriteCacheAsync(RunRecord run, TaskRecord task, RunDefinition definition, IReadOnlyList<ProvenanceRow> rows, CancellationToken ct)
    {
        try
        {
            await _gate.RunAsync(
                async () =>
                {
                    await _cache.WriteAsync(run, task, definition, _stores.Open(definition.Workflow.Output.Uri), rows, ct).ConfigureAwait(false);
                    return true;
                },
                OutageGate.IsOutage,
                $"run {run.RunId} task {task.Index}: writing its cache entry",
                ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogCacheUnwritten(_log, run.RunId, task.Index, task.TaskId, PipelinesException.Describe(e));
        }
    }

    /// <summary>
    /// The vacated attempts an end commits with its own rows: those its delivery read before it
    /// ran (and numbered its attempts after), or, for an end that ran nothing (a run stopping, a
    /// failure before the steps), those there are now. Only a task found running when this
    /// delivery began can have any, so most tasks cost no listing.
    /// </summary>
    private async Task<VacatedAttempts> EarlierAsync(RunRecord run, TaskRecord task, RunDefinition? definition, TaskEnd end, CancellationToken ct) =>
        end.Earlier ?? (definition is null || task.State != TaskState.Running ? VacatedAttempts.None : await VacatedAttempts.ReadAsync(definition.Folder(_stores, run.RunId), task.TaskId, ct).ConfigureAwait(false));

    /// <summary>
    /// Removes the vacated attempts' records once the task's end holds their rows, so that
    /// tasks/TASK/vacated/ does not stay in the run's output. A removal that fails is said (the
    /// records are then left, and read by nobody: the task has ended).
    /// </summary>
    private async Task RemoveVacatedAsync(RunRecord run, TaskRecord task, RunDefinition? definition, VacatedAttempts earlier, CancellationToken ct)
    {
        if (earlier.Keys.Count == 0 || definition is null)
        {
            return;
        }

        try
        {
            await earlier.DeleteAsync(definition.Folder(_stores, run.RunId), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
        {
            LogVacatedLeft(_log, run.RunId, task.Index, VacatedAttempts.Prefix(task.TaskId), PipelinesException.Describe(e));
        }
    }

    /// <summary>
    /// The fan-in: whoever sees no task left starts the gather (at least once; the gather runs
    /// once), and stops this worker's warm containers of the run meanwhile, since no task is left
    /// to use them (other workers' idle out after Worker:WarmStepIdle).
    /// </summary>
    private Task FanInAsync(string runId, int remaining, CancellationToken ct)
    {
        if (remaining != 0)
        {
            return Task.CompletedTask;
        }

        _warmSteps.RunEnded(runId);
        return _queue.EnqueueGatherAsync(runId, ct);
    }

    private RunDefinition? Definition(RunRecord run)
    {
        try
        {
            return _definitions.For(run);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A definition that cannot be read still lets the task end; only the consequences
            // that need the workflow (the cache entry, on_error: fail) are left out.
            LogTaskError(_log, run.RunId, -1, "the run's definition cannot be read: " + PipelinesException.Describe(e));
            return null;
        }
    }

    /// <summary>A task ended: counted once (by the delivery whose commit ended it), and said on its span.</summary>
    private static void Ended(TaskState state)
    {
        EngineMetrics.TaskEnded(state.Name());

        // Said on the task's span, not the settle's (or another part's) that is current here.
        var span = Activity.Current;
        while (span is not null && span.OperationName != EngineTracing.Task)
        {
            span = span.Parent;
        }

        span?.SetTag("pipelines.task.state", state.Name());
        if (state == TaskState.Failed)
        {
            span.Failed("the task failed");
        }
    }

    /// <summary>
    /// The rows of this delivery name the trace they belong to: an attempt's row its own span
    /// (StepLoop), any other (a cached task, a failure before a step) the task's span.
    /// </summary>
    private static void StampTrace(TaskEnd end)
    {
        var (traceId, spanId) = EngineTracing.Current();
        var rows = end switch
        {
            TaskEnd.Settled settled => settled.Rows,
            TaskEnd.Split split => split.Rows,
            TaskEnd.Vacated vacated => vacated.Rows,
            _ => [],
        };
        foreach (var row in rows.Where(r => r.TraceId is null))
        {
            (row.TraceId, row.SpanId) = (traceId, spanId);
        }
    }

    /// <summary>The run's trace, from its definition; null for a run submitted before traces, or one whose definition cannot be read (its failure is reported where it is used).</summary>
    private string? TraceParentOf(RunRecord run)
    {
        try
        {
            return _definitions.For(run).TraceParent;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return null;
        }
    }

    private TaskEnd.Settled Failed(string reason) => new(new TaskOutcome(TaskState.Failed, null, reason, _time.GetUtcNow()), []);

    /// <summary>What a delivery that starts no container holds instead of a slot.</summary>
    private sealed class NoRoomNeeded : IDisposable
    {
        public static readonly NoRoomNeeded Instance = new();

        public void Dispose()
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {Index}: this delivery failed ({Error}) while worker {Worker} holds the task under a live lease; its end is left to that worker")]
    private static partial void LogNotEndedHeld(ILogger logger, string runId, int index, string worker, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {Index} vacated: handed back to the queue for another machine")]
    private static partial void LogVacated(ILogger logger, string runId, int index);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {Index} ({TaskId}) succeeded, but its cache entry could not be written: {Error}; a later run over the same input will run this task again")]
    private static partial void LogCacheUnwritten(ILogger logger, string runId, int index, string taskId, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {Index} was vacated, but its vacated attempt could not be recorded within {Seconds:0} s of the job's cancellation (Worker:VacateRecordGrace): {Error}; the task's record will show only the attempts after it")]
    private static partial void LogVacatedUnrecorded(ILogger logger, string runId, int index, double seconds, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {Index} ended, but the records of its vacated attempts could not be removed from {Folder}: {Error}; their rows are in the task's provenance")]
    private static partial void LogVacatedLeft(ILogger logger, string runId, int index, string folder, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {Index} is held back by the harvesting policy, but the run store could not be told: {Error}")]
    private static partial void LogHoldNotMarked(ILogger logger, string runId, int index, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId}: {Count} tasks of a job handed back to the dispatcher after {Ran} ran, past Worker:JobTime ({Seconds:0.#} s)")]
    private static partial void LogJobTimeUp(ILogger logger, string runId, int count, int ran, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {Index} handed back to the queue: {Why}")]
    private static partial void LogHandedBack(ILogger logger, string runId, int index, string why);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {Index}: {Inputs} inputs staged in {StageMs:0} ms, steps and stage-out {StepsMs:0} ms")]
    private static partial void LogTaskTimes(ILogger logger, string runId, int index, int inputs, double stageMs, double stepsMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {Index} failed as a batch: split into tasks {First}-{Last} ({Count} inputs)")]
    private static partial void LogSplit(ILogger logger, string runId, int index, int count, int first, int last);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {Index} failed: {Error}")]
    private static partial void LogTaskError(ILogger logger, string runId, int index, string error);
}
