namespace Pipelines.Queue;

/// <summary>
/// What an <see cref="InvocationJob"/> delivers an async invocation to: the functions' service
/// (Functions/FunctionService). Owned here, below it, as <see cref="ITaskHandler"/> is.
/// </summary>
internal interface IInvocationHandler
{
    /// <summary>Runs the queued invocation, under the caller's trace where the job carried one; safe to repeat; an outage is thrown, for the queue to deliver it again.</summary>
    Task RunQueuedAsync(string id, string? traceParent, CancellationToken cancellationToken);

    /// <summary>Ends the invocation failed with <paramref name="reason"/>: the queue gave up on it.</summary>
    Task GiveUpAsync(string id, string reason, CancellationToken cancellationToken);
}
