using Pipelines.Tenancy;

namespace Pipelines.Algorithms;

/// <summary>One pushed version of an algorithm: an image kept in the algorithm store under its digest.</summary>
public sealed record AlgorithmVersion(
    string Name,
    string Version,
    string Digest,
    long SizeBytes,
    string PushedBy,
    DateTimeOffset PushedAt,
    string? Notes,
    IReadOnlyList<string> RepoTags,
    IReadOnlyList<string> LockDown)
{
    /// <summary>The tenant that pushed the version (docs/tenants.md); a tenant's view of the store stamps it.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;

    /// <summary>An image's size as the CLI and the dashboard show it: KiB below a MiB, MiB from there.</summary>
    public static string SizeText(long bytes) => bytes >= 1 << 20
        ? (bytes / (double)(1 << 20)).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " MiB"
        : (bytes / 1024.0).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " KiB";
}

/// <summary>
/// A channel (stable, canary) of an algorithm and the version it names. A canary's
/// <see cref="Percent"/> is the share of a function's invocations it serves, or with
/// <see cref="Shadow"/> the share of them copied to it while stable answers.
/// </summary>
public sealed record AlgorithmChannel(string Name, string Channel, string Version, int Percent, DateTimeOffset UpdatedAt, string UpdatedBy, bool Shadow = false)
{
    /// <summary>The tenant whose algorithm this is.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;
}

/// <summary>A change of an algorithm's channels: canary, shadow, promote, abort or rollback, by whom and why.</summary>
public sealed record ChannelEvent(string Name, string Action, string? Version, int? Percent, string By, string? Reason, DateTimeOffset At)
{
    public const string CanaryAction = "canary";
    public const string ShadowAction = "shadow";
    public const string PromoteAction = "promote";
    public const string AbortAction = "abort";

    /// <summary>An abort by the canary guard (who is <c>auto-rollback</c>), with the figures that caused it.</summary>
    public const string RollbackAction = "rollback";

    /// <summary>The tenant whose algorithm changed; a tenant's view of the store stamps it.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;
}

/// <summary>What a function following <c>@stable</c> is served by now: the stable version, and the canary with its share when there is one.</summary>
public sealed record AlgorithmRoute(string Name, AlgorithmVersionRef Stable, AlgorithmVersionRef? Canary, int Percent, bool Shadow, DateTimeOffset? CanarySince);

/// <summary>A version and the digest it pins.</summary>
public sealed record AlgorithmVersionRef(string Version, string Digest);

/// <summary>A worker's load of an image its engine lacked: where from and how long it took.</summary>
public sealed record ImageLoad(string Digest, string Worker, string Source, double Seconds, long Bytes, DateTimeOffset LoadedAt)
{
    /// <summary>The tenant whose run or function caused the load; a tenant's view of the store stamps it and lists only its own.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;
}
