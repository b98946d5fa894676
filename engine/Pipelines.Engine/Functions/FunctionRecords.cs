namespace Pipelines.Functions;

/// <summary>One deployed version of a function: its file, its definition and the image digest it pins.</summary>
public sealed record FunctionVersion(string Name, int Version, FunctionSpec Spec, string ImageDigest, string Yaml, string ContentSha256, DateTimeOffset DeployedAt, string DeployedBy)
{
    /// <summary>The owner of its warm containers: never shared with another version.</summary>
    public string Owner => OwnerOf(Name, Version);

    public static string OwnerOf(string name, int version) => $"function:{name}@{version}";
}

/// <summary>What a deploy did: a new version, or none because the content was already the current one.</summary>
public sealed record DeployResult(FunctionVersion Function, bool Created, int? Replaced);

/// <summary>How an invocation ended (or where it is, for a queued one).</summary>
public enum InvocationStatus
{
    Queued,
    Running,
    Succeeded,

    /// <summary>The algorithm failed: a non-zero exit, a crash, an unusable /out, an HTTP error of its server.</summary>
    Failed,
    TimedOut,

    /// <summary>Refused before it ran: a full queue, a missing secret, no pool.</summary>
    Refused,
}

/// <summary>One recorded invocation of a function version.</summary>
public sealed record InvocationRecord(
    string Id,
    string Function,
    int Version,
    string ImageDigest,
    InvocationStatus Status,
    bool Async,
    string? InputSha256,
    long InputBytes,
    string? OutputSha256,
    long? OutputBytes,
    string? OutputName,
    string? ContentType,
    int? HttpStatus,
    double? LatencyMs,
    string? ContainerId,
    DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt,
    string? Error,
    string? Caller);

/// <summary>How an invocation ended, as the invoker records it.</summary>
public sealed record InvocationEnd(
    InvocationStatus Status,
    int HttpStatus,
    string? OutputSha256,
    long? OutputBytes,
    string? OutputName,
    string? ContentType,
    double LatencyMs,
    string? ContainerId,
    string? Error);

/// <summary>Figures of one function version over the retained invocations, computed in SQL.</summary>
public sealed record InvocationStats(string Function, int Version, long Requests, long Errors, double? P50Ms, double? P95Ms, DateTimeOffset? Last);

/// <summary>How many invocations are kept (Functions:KeepInvocations, Functions:KeepInvocationsFor).</summary>
public sealed record InvocationRetention(int Keep, TimeSpan KeepFor)
{
    public static InvocationRetention Default { get; } = new(100_000, TimeSpan.FromDays(30));
}
