namespace Pipelines.Queue;

/// <summary>
/// What a <see cref="TaskJob"/> delivers a task to: the worker's task shell (Worker/TaskRunner).
/// Owned here, below the worker, so that the queue names no part above it (docs/architecture.md, "Layering").
/// </summary>
public interface ITaskHandler
{
    /// <summary>Runs one delivery of the task; an outage is thrown, for the queue to deliver it again.</summary>
    Task RunAsync(string runId, int index, CancellationToken cancellationToken);

    /// <summary>Ends the task failed with <paramref name="reason"/>: the queue gave up on it.</summary>
    Task EndFailedAsync(string runId, int index, string reason, CancellationToken cancellationToken);
}
