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

    public InvocationEnd ToEnd() => new(Status, HttpStatus, OutputSha256, OutputBytes, OutputName, ContentType, LatencyMs, ContainerId,
        StderrTail is null ? Error : Error + Environment.NewLine + StderrTail, ColdStart: ColdStart);

    public static InvocationOutcome Failure(InvocationStatus status, int httpStatus, string error, double latencyMs, string? containerId = null, string? stderrTail = null) =>
        new(status, httpStatus, null, null, null, null, null, containerId, error, stderrTail, latencyMs);
}
