namespace Pipelines.Functions;

/// <summary>An invocation's status as it is stored and shown: queued, running, succeeded, failed, timed_out, refused.</summary>
public static class InvocationStatuses
{
    public static string Name(InvocationStatus status) => status switch
    {
        InvocationStatus.TimedOut => "timed_out",
        _ => status.ToString().ToLowerInvariant(),
    };

    public static InvocationStatus Parse(string name) =>
        name == "timed_out" ? InvocationStatus.TimedOut : Enum.Parse<InvocationStatus>(name, ignoreCase: true);

    /// <summary>Whether an invocation in this status has ended (an ending is never changed again).</summary>
    public static bool HasEnded(InvocationStatus status) => status is not (InvocationStatus.Queued or InvocationStatus.Running);

    /// <summary>Whether an ended invocation counts as an error in the figures: every ending but success.</summary>
    public static bool IsError(InvocationStatus status) => status is InvocationStatus.Failed or InvocationStatus.TimedOut or InvocationStatus.Refused;
}
