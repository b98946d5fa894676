namespace Pipelines.Queue;

/// <summary>
/// Where an async invocation is queued for any worker process (the default queue), delivered
/// as an <see cref="InvocationJob"/> to the <see cref="IInvocationHandler"/>: by the dispatcher,
/// which releases waiting invocations by fair share (<see cref="InvocationRelease"/>). The functions name
/// this, never Hangfire (docs/architecture.md, "Layering").
/// </summary>
internal interface IInvocationQueue
{
    /// <summary>Queues invocation <paramref name="id"/>, recorded before; <paramref name="traceParent"/>, the caller's trace, goes with it so that the worker's run joins it.</summary>
    void Enqueue(string id, string? traceParent);

    /// <summary>Queues invocation <paramref name="id"/> again after <paramref name="delay"/>: a tenant quota held it (it stays queued meanwhile).</summary>
    void Schedule(string id, string? traceParent, TimeSpan delay);

    /// <summary>An invocation was recorded waiting, or one ended: the dispatcher looks now (in this process, and across processes), rather than at its next tick.</summary>
    Task ChangedAsync(CancellationToken cancellationToken);
}
