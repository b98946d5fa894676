using Pipelines.Containers;

namespace Pipelines.Functions;

/// <summary>
/// How one call ended, for the caller to answer with: the output file (deleted by the caller) or
/// the status and reason of a failure, and the algorithm's last lines when it crashed.
/// </summary>
public sealed record InvocationOutcome(
    InvocationStatus Status,
    int HttpStatus,
    string? OutputPath,
    string? OutputName,
    string? ContentType,
    string? OutputSha256,
    long? OutputBytes,
    string? ContainerId,
    string? Error,
    string? StderrTail,
    double LatencyMs)
{
    public bool Succeeded => Status == InvocationStatus.Succeeded;

    /// <summary>Whether the request waited for its warm container to start (its latency includes the start).</summary>
    public bool ColdStart { get; init; }

    /// <summary>
    /// A synchronous request's output of at most <see cref="FunctionInvoker.SmallFile"/> bytes,
    /// held in memory for the answer instead of written to a file (<see cref="OutputPath"/> is
    /// null then); its name, type, sha256 and size are set as for a file.
    /// </summary>
    public byte[]? Content { get; init; }

    /// <summary>The tenant's quota that refused it (429): a synchronous caller is told its Retry-After, an async invocation waits and is tried again.</summary>
    public Quotas.QuotaRefusal? Quota { get; init; }

    /// <summary>What the request used, as its warm container's cgroup grew for it (a fork-mode request); null where not measured.</summary>
    public ResourceUse? Resources { get; init; }

    /// <summary>Why <see cref="Resources"/> is not measured, when it is not for a reason of the mode.</summary>
    public string? ResourceNote { get; init; }

    /// <summary>The memory reserved for the request (the function's resources.memory); null when no container served it.</summary>
    public long? ReservedMemoryBytes { get; init; }

    public InvocationEnd ToEnd() => new(Status, HttpStatus, OutputSha256, OutputBytes, OutputName, ContentType, LatencyMs, ContainerId,
        StderrTail is null ? Error : Error + Environment.NewLine + StderrTail, ColdStart: ColdStart, Resources: Resources, ReservedMemoryBytes: ReservedMemoryBytes, ResourceNote: ResourceNote);

    public static InvocationOutcome Failure(InvocationStatus status, int httpStatus, string error, double latencyMs, string? containerId = null, string? stderrTail = null) =>
        new(status, httpStatus, null, null, null, null, null, containerId, error, stderrTail, latencyMs);
}
