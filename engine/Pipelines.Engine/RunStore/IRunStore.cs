using Pipelines.Tenancy;

namespace Pipelines.RunStore;

/// <summary>
/// Runs, tasks and provenance rows. Every state change that a second delivery of a job could
/// repeat is a conditional update, so doing it twice is harmless. Failures are never hidden.
/// </summary>
/// <remarks>
/// Both stores keep one behaviour, checked by tests/Pipelines.Tests/RunStore/RunStoreContract.cs:
/// <list type="bullet">
/// <item>A run's tasks are numbered 0 to n - 1 in the order given; a task's index is that number, never a position in some list.</item>
/// <item>Reads of a run that does not exist find nothing: null for one run or task, an empty list, page or count otherwise.</item>
/// <item>Changes that can say "no" (claim, renew, begin gather) say false or null for a run or task that does not exist;
/// the others (commit, split, stop, finish) throw <see cref="UnknownRunException"/> and write nothing.</item>
/// <item>Creating a run whose id exists throws <see cref="DuplicateRunException"/> and writes nothing.</item>
/// <item>The store makes no tables: Hosting/PostgresSchema does, once at host start; a PostgreSQL store used before refuses with what to do.</item>
/// </list>
/// </remarks>
public interface IRunStore
{
    /// <summary>
    /// The store as <paramref name="scope"/> sees it: itself for every tenant; for one tenant, a
    /// view (<see cref="TenantRunStore"/>) where another tenant's run is answered as a missing
    /// one and created runs are the tenant's. Front ends take views; the engine keeps the whole store.
    /// </summary>
    IRunStore For(TenantScope scope) => scope.Tenant is { } tenant ? new TenantRunStore(this, tenant) : this;

    /// <summary>
    /// Creates a run with all its tasks in one transaction. The run's task count and remaining
    /// tasks are the number of tasks given. Refused (<see cref="ArgumentException"/>, nothing
    /// written) when there is no task or the tasks are not numbered 0 to n - 1 for this run;
    /// <see cref="DuplicateRunException"/> when the run id exists.
    /// </summary>
    Task CreateRunAsync(RunRecord run, IReadOnlyList<TaskRecord> tasks, CancellationToken cancellationToken);

    /// <summary>
    /// Creates a run with tasks that are still being planned, in one transaction; the run's task
    /// count is what the stream held. A stream of no task creates nothing and returns 0; a stream
    /// that throws, even after its last task, creates nothing and the exception goes on (the
    /// submitter's last write before the commit relies on it).
    /// <see cref="DuplicateRunException"/> when the run id exists (even for an empty stream);
    /// <see cref="ArgumentException"/> when the tasks are not numbered 0 to n - 1 for this run.
    /// </summary>
    Task<int> CreateRunAsync(RunRecord run, IAsyncEnumerable<TaskRecord> tasks, CancellationToken cancellationToken);

    /// <summary>The run, or null when it does not exist.</summary>
    Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken);

    /// <summary>Runs that match the query's filters, newest first (then by run id), one page of them.</summary>
    Task<Page<RunRecord>> QueryRunsAsync(RunQuery query, CancellationToken cancellationToken);

    /// <summary>Tasks of a run that match the query's state, by index, one page of them; empty for a run that does not exist.</summary>
    Task<Page<TaskRecord>> QueryTasksAsync(string runId, TaskQuery query, CancellationToken cancellationToken);

    /// <summary>The task with that index, or null when the run or the task does not exist.</summary>
    Task<TaskRecord?> GetTaskAsync(string runId, int index, CancellationToken cancellationToken);

    /// <summary>All tasks of a run, by index; empty for a run that does not exist.</summary>
    Task<IReadOnlyList<TaskRecord>> GetTasksAsync(string runId, CancellationToken cancellationToken);

    /// <summary>The run's tasks counted by state, and the queued ones held back by reason; all zero for a run that does not exist.</summary>
    Task<TaskCounts> CountTasksAsync(string runId, CancellationToken cancellationToken);

    /// <summary>
    /// Marks a task running for a new attempt, held by <paramref name="worker"/> until
    /// <paramref name="leaseUntil"/> (a hold it had is cleared), and returns the number of deliveries before this one
    /// (this one is that + 1; its usage record is keyed by it, Usage/UsageRecord.TaskId). A running task's
    /// previous delivery that left no usage record (its worker was lost) gets one here, vacated
    /// (Usage/TaskUsage.Lost), in the claim's statement, and is counted.
    /// Only a queued task, or a running one whose lease has expired (its worker died), is
    /// claimed: null when the task has ended, the run stops or has left the running state, a
    /// live lease holds it, or the run or task does not exist, so a second delivery of a task
    /// that still runs does not run it again.
    /// </summary>
    Task<int?> ClaimTaskAsync(string runId, int index, string worker, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken);

    /// <summary>
    /// Marks a queued task held back, and why (<see cref="TaskHold"/>): a worker had it and could
    /// not start it (the machine's owner is busy). The first hold's time is kept when it is held
    /// again; the task's next claim clears it. False, and nothing changes, for a task that is not
    /// queued, and for a run or task that does not exist.
    /// </summary>
    Task<bool> HoldTaskAsync(string runId, int index, TaskHold hold, CancellationToken cancellationToken);

    /// <summary>
    /// Moves the lease of the attempt that <paramref name="worker"/> claimed at
    /// <paramref name="startedAt"/> to <paramref name="leaseUntil"/> (a time already past
    /// releases it); false when the task has ended, another attempt holds it now, or the run or
    /// task does not exist.
    /// </summary>
    Task<bool> RenewLeaseAsync(string runId, int index, string worker, DateTimeOffset startedAt, DateTimeOffset leaseUntil, CancellationToken cancellationToken);

    /// <summary>
    /// Ends a task once: only a task that has not ended changes, and its provenance rows are
    /// written in the same transaction. Returns the tasks of the run still to end, and whether
    /// this call was the one that ended the task; of N concurrent callers exactly one commits.
    /// The rows are refused (<see cref="ArgumentException"/>, nothing written) when two of them
    /// have the same attempt and step. <see cref="UnknownRunException"/> when the run or the
    /// task does not exist.
    /// </summary>
    Task<(bool Committed, int Remaining)> CommitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, CancellationToken cancellationToken);

    /// <summary>
    /// Ends a failed batch as split and adds its inputs as tasks of their own, in one
    /// transaction: only a task that has not ended changes, and only then are the children
    /// added (queued, numbered after the run's last task, with this task as their parent) and
    /// counted in the run's remaining tasks. Returns whether this call split it, the children's
    /// indexes, and the tasks still to end. Rows and unknown runs as <see cref="CommitTaskAsync"/>.
    /// </summary>
    Task<(bool Committed, IReadOnlyList<int> Children, int Remaining)> SplitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, IReadOnlyList<TaskRecord> children, CancellationToken cancellationToken);

    /// <summary>
    /// Asks a run to stop: tasks not yet started are no longer claimed. The first reason wins.
    /// <see cref="UnknownRunException"/> when the run does not exist.
    /// </summary>
    Task RequestStopAsync(string runId, string reason, CancellationToken cancellationToken);

    /// <summary>
    /// Moves a running run whose tasks have all ended to gathering, for one gather job only (the
    /// same job may call again and is told true); false otherwise, and for a run that does not exist.
    /// </summary>
    Task<bool> TryBeginGatherAsync(string runId, string gatherJobId, CancellationToken cancellationToken);

    /// <summary>
    /// Ends a run in <paramref name="state"/> with its error, once: a run that has ended keeps
    /// its first ending. <see cref="UnknownRunException"/> when the run does not exist.
    /// </summary>
    Task FinishRunAsync(string runId, RunState state, string? error, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// The provenance rows of a run's committed tasks: by task index, then by step in the order
    /// the commit recorded the steps, then by attempt. Empty for a run that does not exist.
    /// </summary>
    Task<IReadOnlyList<ProvenanceRow>> GetProvenanceAsync(string runId, CancellationToken cancellationToken);

    /// <summary>
    /// The rows of <see cref="GetProvenanceAsync(string, CancellationToken)"/>, in its order, read as
    /// they are taken: memory holds a row at a time, not the run's rows (the gather reads a run of
    /// any size this way). Empty for a run that does not exist.
    /// </summary>
    IAsyncEnumerable<ProvenanceRow> ReadProvenanceAsync(string runId, CancellationToken cancellationToken);

    /// <summary>
    /// The provenance rows of some of a run's tasks (a page of them: what a page shows costs no
    /// more than the page), in the order of <see cref="GetProvenanceAsync(string, CancellationToken)"/>.
    /// </summary>
    Task<IReadOnlyList<ProvenanceRow>> GetProvenanceAsync(string runId, IReadOnlyCollection<int> taskIndexes, CancellationToken cancellationToken);
    // The dispatcher's verbs (Queue/TaskDispatcher, docs/tenants.md): a queued task is pending
    // until released into Hangfire's queue; released, it is in flight until it ends.

    /// <summary>
    /// Per tenant, its pending tasks (queued, not released, of a running run not asked to stop)
    /// and its tasks in flight (released and queued, or running); tenants with neither are left out.
    /// </summary>
    Task<IReadOnlyList<TenantLoad>> TenantLoadsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Releases up to <paramref name="count"/> of the tenant's pending tasks, oldest run first
    /// (run ids are time-ordered) and by task index, stamping <paramref name="now"/>, and clears
    /// their hold by quota; returns them. Rows another releaser holds are skipped, never waited for.
    /// </summary>
    Task<IReadOnlyList<TaskKey>> ReleaseTasksAsync(TenantId tenant, int count, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// First come, first served across tenants (Tenancy:FairShare false): releases up to
    /// <paramref name="count"/> pending tasks of any tenant but <paramref name="except"/>, oldest run
    /// first and by task index, as <see cref="ReleaseTasksAsync"/> does for one tenant.
    /// </summary>
    Task<IReadOnlyList<TaskKey>> ReleaseOldestAsync(int count, IReadOnlyCollection<TenantId> except, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Those of <paramref name="keys"/> still in flight (released and queued, or running), in the
    /// store's order: the dispatcher's look at the jobs of several tasks it released, so that a
    /// job counts as one until its last task ends (docs/decisions.md, "Several tasks per Hangfire job").
    /// </summary>
    Task<IReadOnlyList<TaskKey>> InFlightAsync(IReadOnlyList<TaskKey> keys, CancellationToken cancellationToken);

    /// <summary>Runs asked to stop that still have pending tasks (which no release will start: <see cref="CancelPendingAsync"/> ends them).</summary>
    Task<IReadOnlyList<string>> StoppingWithPendingAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Makes queued tasks of the run pending again (a hand-back, split children): the dispatcher
    /// releases them in their turn. Tasks not queued are left as they are and returned (a running
    /// task whose attempt was vacated, its lease released, needs a job now: it is in flight already).
    /// </summary>
    Task<IReadOnlyList<int>> MarkPendingAsync(string runId, IReadOnlyList<int> taskIndexes, CancellationToken cancellationToken);

    /// <summary>
    /// Releases again up to <paramref name="count"/> tasks released before <paramref name="releasedBefore"/>
    /// and still queued (the dispatcher stopped between the release and the enqueue); returns them.
    /// Tasks released by the upgrade to tables v4 (their jobs were enqueued at submission) are not among them.
    /// </summary>
    Task<IReadOnlyList<TaskKey>> ReleaseStuckAsync(DateTimeOffset releasedBefore, DateTimeOffset now, int count, CancellationToken cancellationToken);

    /// <summary>
    /// Marks the tenant's pending tasks that are not held already held with <paramref name="hold"/>
    /// (one set-based update); returns how many it marked.
    /// </summary>
    Task<int> HoldPendingAsync(TenantId tenant, TaskHold hold, CancellationToken cancellationToken);

    /// <summary>Clears the hold of <paramref name="reason"/> from the tenant's pending tasks; returns how many it cleared.</summary>
    Task<int> ClearPendingHoldAsync(TenantId tenant, string reason, CancellationToken cancellationToken);

    /// <summary>
    /// Ends at once, with <paramref name="outcome"/>, the pending tasks of a run asked to stop (none
    /// for a run that was not), in one statement, lowering its remaining tasks; returns how many
    /// ended and the tasks still to end (at 0 the caller enqueues the gather, as after a commit).
    /// <see cref="UnknownRunException"/> when the run does not exist.
    /// </summary>
    Task<(int Ended, int Remaining)> CancelPendingAsync(string runId, TaskOutcome outcome, CancellationToken cancellationToken);

    /// <summary>Every tenant's decayed use as the dispatcher last kept it (Tenancy/FairShare).</summary>
    Task<IReadOnlyDictionary<TenantId, TenantUse>> ReadTenantUsageAsync(CancellationToken cancellationToken);

    /// <summary>Keeps the tenants' decayed uses, over what was kept for them.</summary>
    Task WriteTenantUsageAsync(IReadOnlyDictionary<TenantId, TenantUse> uses, CancellationToken cancellationToken);
}
