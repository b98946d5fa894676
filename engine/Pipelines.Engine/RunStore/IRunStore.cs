namespace Pipelines.RunStore;

/// <summary>
/// Runs, tasks and provenance rows. Every state change that a second delivery of a job could
/// repeat is a conditional update, so doing it twice is harmless. Failures are never hidden.
/// </summary>
public interface IRunStore
{
    Task InitializeAsync(CancellationToken cancellationToken);

    /// <summary>Creates a run with all its tasks, queued, in one transaction.</summary>
    Task CreateRunAsync(RunRecord run, IReadOnlyList<TaskRecord> tasks, CancellationToken cancellationToken);

    /// <summary>
    /// Creates a run with tasks that are still being planned, in one transaction; the run's task
    /// count is what the stream held. A stream of no task creates nothing and returns 0.
    /// </summary>
    Task<int> CreateRunAsync(RunRecord run, IAsyncEnumerable<TaskRecord> tasks, CancellationToken cancellationToken);

    Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken);

    Task<IReadOnlyList<RunRecord>> ListRunsAsync(int limit, CancellationToken cancellationToken);

    /// <summary>Runs that match the query's filters, newest first, one page of them.</summary>
    Task<Page<RunRecord>> QueryRunsAsync(RunQuery query, CancellationToken cancellationToken);

    /// <summary>Tasks of a run that match the query's state, by index, one page of them.</summary>
    Task<Page<TaskRecord>> QueryTasksAsync(string runId, TaskQuery query, CancellationToken cancellationToken);

    Task<TaskRecord?> GetTaskAsync(string runId, int index, CancellationToken cancellationToken);

    Task<IReadOnlyList<TaskRecord>> GetTasksAsync(string runId, CancellationToken cancellationToken);

    Task<TaskCounts> CountTasksAsync(string runId, CancellationToken cancellationToken);

    /// <summary>
    /// Marks a task running for a new attempt, held by <paramref name="worker"/> until
    /// <paramref name="leaseUntil"/>, and returns the number of attempts made before this one.
    /// Only a queued task, or a running one whose lease has expired (its worker died), is
    /// claimed: null when the task has ended, the run stops, or a live lease holds it, so a
    /// second delivery of a task that still runs does not run it again.
    /// </summary>
    Task<int?> ClaimTaskAsync(string runId, int index, string worker, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken);

    /// <summary>
    /// Moves the lease of the attempt that <paramref name="worker"/> claimed at
    /// <paramref name="startedAt"/> to <paramref name="leaseUntil"/> (a time already past
    /// releases it); false when the task has ended or another attempt holds it now.
    /// </summary>
    Task<bool> RenewLeaseAsync(string runId, int index, string worker, DateTimeOffset startedAt, DateTimeOffset leaseUntil, CancellationToken cancellationToken);

    /// <summary>
    /// Ends a task once: only a task that has not ended changes, and its provenance rows are
    /// written in the same transaction. Returns the tasks of the run still to end, and whether
    /// this call was the one that ended the task.
    /// </summary>
    Task<(bool Committed, int Remaining)> CommitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, CancellationToken cancellationToken);

    /// <summary>
    /// Ends a failed batch as split and adds its inputs as tasks of their own, in one
    /// transaction: only a task that has not ended changes, and only then are the children
    /// added (numbered after the run's last task) and counted in the run's remaining tasks.
    /// Returns whether this call split it, the children's indexes, and the tasks still to end.
    /// </summary>
    Task<(bool Committed, IReadOnlyList<int> Children, int Remaining)> SplitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, IReadOnlyList<TaskRecord> children, CancellationToken cancellationToken);

    /// <summary>Asks a run to stop: tasks not yet started end as cancelled. The first reason wins.</summary>
    Task RequestStopAsync(string runId, string reason, CancellationToken cancellationToken);

    /// <summary>Moves a run whose tasks have all ended to gathering, for one gather job only (the same job may call again).</summary>
    Task<bool> TryBeginGatherAsync(string runId, string gatherJobId, CancellationToken cancellationToken);

    Task FinishRunAsync(string runId, RunState state, string? error, DateTimeOffset now, CancellationToken cancellationToken);

    Task<IReadOnlyList<ProvenanceRow>> GetProvenanceAsync(string runId, CancellationToken cancellationToken);
}
