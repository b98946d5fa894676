namespace Pipelines.Queue;

/// <summary>The seam to Hangfire: jobs carry ids only, never payloads.</summary>
internal interface ITaskQueue
{
    /// <summary>The tasks of the run are to run: one job each, now or (the dispatcher) in their turn.</summary>
    Task EnqueueTasksAsync(string runId, IReadOnlyList<int> taskIndexes, CancellationToken cancellationToken);

    /// <summary>How many task jobs the live workers can run at once (for input.batch: auto).</summary>
    Task<int> WorkerSlotsAsync(CancellationToken cancellationToken);

    /// <summary>The gather job; enqueuing it twice is harmless (only one begins).</summary>
    Task EnqueueGatherAsync(string runId, CancellationToken cancellationToken);

    /// <summary>A task job's delivery has ended here: its slot is free (the dispatcher fills it at once rather than at its next look).</summary>
    Task TaskEndedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
