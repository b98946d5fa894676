namespace Pipelines.Queue;

/// <summary>
/// What a <see cref="TaskJob"/> delivers its tasks to: the worker's task shell (Worker/TaskRunner).
/// Owned here, below the worker, so that the queue names no part above it (docs/architecture.md, "Layering").
/// </summary>
public interface ITaskHandler
{
    /// <summary>
    /// Runs one delivery of a job's tasks of the run, one at a time, each as its own delivery;
    /// an outage is thrown, for the queue to deliver the job again.
    /// </summary>
    Task RunAsync(string runId, IReadOnlyList<int> indexes, CancellationToken cancellationToken);

    /// <summary>Ends the task failed with <paramref name="reason"/>: the queue gave up on its job.</summary>
    Task EndFailedAsync(string runId, int index, string reason, CancellationToken cancellationToken);
}
