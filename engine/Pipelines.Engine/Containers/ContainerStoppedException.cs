namespace Pipelines.Containers;

/// <summary>
/// A container (or a warm request) stopped by its caller's token: a vacate, a user's cancel, a
/// shutdown. A cancellation like any other, carrying what the container printed until it was
/// stopped, so that the step's log keeps it.
/// </summary>
internal sealed class ContainerStoppedException(string log, CancellationToken token)
    : OperationCanceledException("the container was stopped before it ended", token)
{
    /// <summary>Its stdout and stderr until it was stopped (at most Docker:MaxLogBytes, secrets masked).</summary>
    public string Log => log;
}
