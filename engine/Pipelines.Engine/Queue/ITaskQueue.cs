namespace Pipelines.Queue;

/// <summary>The seam to Hangfire: jobs carry ids only, never payloads.</summary>
internal interface ITaskQueue
{
    /// <summary>One job per task of the run.</summary>
    Task EnqueueTasksAsync(string runId, IReadOnlyList<int> taskIndexes, CancellationToken cancellationToken);

    /// <summary>How many task jobs the live workers can run at once (for input.batch: auto).</summary>
    Task<int> WorkerSlotsAsync(CancellationToken cancellationToken);

    /// <summary>The gather job; enqueuing it twice is harmless (only one begins).</summary>
    Task EnqueueGatherAsync(string runId, CancellationToken cancellationToken);
}
