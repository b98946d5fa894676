using Pipelines.Tenancy;

namespace Pipelines.Functions;

/// <summary>One deployed version of a function: its file, its definition and the image digest it pins.</summary>
public sealed record FunctionVersion(string Name, int Version, FunctionSpec Spec, string ImageDigest, string Yaml, string ContentSha256, DateTimeOffset DeployedAt, string DeployedBy)
{
    /// <summary>
    /// The algorithm version serving this invocation of a function that follows
    /// <c>algorithm://NAME@stable</c> (<see cref="ImageDigest"/> is then that version's digest);
    /// null for a function pinned to one image.
    /// </summary>
    public string? AlgorithmVersion { get; init; }

    /// <summary>The tenant that deployed the function (docs/tenants.md); a tenant's view of the store stamps it.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;

    /// <summary>The owner of its warm containers: never shared with another function version, nor with another algorithm version, nor with another tenant's function of the same name.</summary>
    public string Owner => AlgorithmVersion is null ? OwnerOf(Tenant, Name, Version) : OwnerOf(Tenant, Name, Version) + "/" + AlgorithmVersion;

    /// <summary><c>function:NAME@V</c> in the default tenant (the name warm containers had before tenants), <c>function:TENANT/NAME@V</c> in another.</summary>
    public static string OwnerOf(TenantId tenant, string name, int version) => tenant.IsDefault ? $"function:{name}@{version}" : $"function:{tenant}/{name}@{version}";

    /// <summary>Whether a warm pool owner is a function version's (not a run's step).</summary>
    public static bool IsFunctionOwner(string owner) => owner.StartsWith("function:", StringComparison.Ordinal);

    /// <summary>Whether a warm pool owner is one of a function version's: its own, or one per algorithm version serving it.</summary>
    public static bool IsOwnerOf(string owner, TenantId tenant, string name, int version)
    {
        var own = OwnerOf(tenant, name, version);
        return owner == own || (owner.StartsWith(own, StringComparison.Ordinal) && owner[own.Length] == '/');
    }

    /// <summary>This version as served by one algorithm version (a route of <see cref="FunctionRouter"/>).</summary>
    public FunctionVersion ServedBy(string algorithmVersion, string digest) => this with { AlgorithmVersion = algorithmVersion, ImageDigest = digest };
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
    string? Caller,
    string? AlgorithmVersion = null,
    string? Route = null,
    string? ShadowOf = null,
    bool? ShadowEqual = null)
{
    /// <summary>The tenant whose function was invoked; a tenant's view of the store stamps it.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;

    /// <summary>Why a queued async invocation waits (a tenant quota, and when it is tried again); null once it starts, and for every other.</summary>
    public string? Held { get; init; }

    /// <summary>An async invocation's caller's trace, written with it for the job the dispatcher queues; not read back with the record.</summary>
    public string? TraceParent { get; init; }
}

/// <summary>How an invocation was routed: to stable, to the canary, or a shadow copy of another (docs/algorithms.md).</summary>
internal static class Routes
{
    public const string Stable = "stable";
    public const string Canary = "canary";
    public const string Shadow = "shadow";
}

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
    string? Error,
    bool? ShadowEqual = null,
    bool ColdStart = false,
    Containers.ResourceUse? Resources = null,
    long? ReservedMemoryBytes = null,
    string? ResourceNote = null);

/// <summary>
/// An invocation recorded once, when it has ended (a synchronous one, written in batches off the
/// request path: <see cref="InvocationLog"/>): the row as it started and how it ended.
/// </summary>
public sealed record EndedInvocation(InvocationRecord Started, InvocationEnd End, DateTimeOffset FinishedAt)
{
    /// <summary>The row as it reads back: its start with its end recorded.</summary>
    public InvocationRecord Record => Started with
    {
        Status = End.Status,
        HttpStatus = End.HttpStatus,
        OutputSha256 = End.OutputSha256,
        OutputBytes = End.OutputBytes,
        OutputName = End.OutputName,
        ContentType = End.ContentType,
        LatencyMs = End.LatencyMs,
        ContainerId = End.ContainerId,
        FinishedAt = FinishedAt,
        Error = End.Error,
        ShadowEqual = End.ShadowEqual,
    };
}

/// <summary>
/// Figures of one function version (and the algorithm version that served it; shadow copies
/// apart) over the retained invocations or a window, computed in SQL.
/// </summary>
public sealed record InvocationStats(string Function, int Version, long Requests, long Errors, double? P50Ms, double? P95Ms, DateTimeOffset? Last)
{
    /// <summary>The algorithm version that served these invocations; null for a function pinned to one image.</summary>
    public string? AlgorithmVersion { get; init; }

    /// <summary>The tenant whose function this is.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;

    /// <summary>Whether these are shadow copies (their answers went to no caller).</summary>
    public bool Shadow { get; init; }

    /// <summary>The invocations that have ended: what <see cref="ErrorRate"/> is over.</summary>
    public long Ended { get; init; }

    /// <summary>Shadow copies whose output had the same sha256 as stable's answer, and those whose output differed.</summary>
    public long Equal { get; init; }

    public long Different { get; init; }

    /// <summary>Invocations that waited for their warm container to start.</summary>
    public long ColdStarts { get; init; }

    /// <summary>The p95 latency of the invocations served by a container already started: what the canary guard compares.</summary>
    public double? WarmP95Ms { get; init; }

    public double? ErrorRate => Ended == 0 ? null : Errors / (double)Ended;

    /// <summary>Invocations refused before they ran (a full queue, a dropped shadow copy): counted in <see cref="Errors"/>.</summary>
    public long Refused { get; init; }

    /// <summary>The ended invocations that ran: what the canary guard judges (a refusal is not the version's doing).</summary>
    public long Ran => Ended - Refused;

    /// <summary>The errors of the invocations that ran, over them.</summary>
    public double? RanErrorRate => Ran <= 0 ? null : (Errors - Refused) / (double)Ran;
}

/// <summary>How many invocations are kept (Functions:KeepInvocations, Functions:KeepInvocationsFor).</summary>
public sealed record InvocationRetention(int Keep, TimeSpan KeepFor)
{
    public static InvocationRetention Default { get; } = new(100_000, TimeSpan.FromDays(30));
}
