namespace Pipelines.Triggers;

/// <summary>The seam between a trigger and the run machinery: start (or finish starting) the run of a claimed batch.</summary>
internal interface ITriggerRunStarter
{
    /// <summary>
    /// Creates and queues the run <see cref="TriggerBatch.RunId"/> over the batch's objects, or,
    /// when that run exists already (a retry after a crash), makes sure its tasks are queued.
    /// Throws a <see cref="PipelinesException"/> whose RetryHelps says whether to try again.
    /// </summary>
    Task StartAsync(RegisteredTrigger trigger, TriggerBatch batch, CancellationToken cancellationToken);
}
