using Pipelines.Algorithms;
using Pipelines.Containers.Warm;
using Pipelines.Functions;
using Pipelines.Model;
using Pipelines.Tenancy;

namespace Pipelines.Server.Api;

/// <summary>A function's version: what it runs, under which limits, and where to call it.</summary>
public sealed record FunctionView(
    string Name,
    int Version,
    string? Description,
    string Image,
    string ImageDigest,
    string Mode,
    IReadOnlyList<string> Command,
    string Timeout,
    int Concurrency,
    int MinWarm,
    int Max,
    int Queue,
    string IdleTimeout,
    long MaxRequestBytes,
    string? Output,
    string? ContentType,
    DateTimeOffset DeployedAt,
    string DeployedBy,
    string Url,
    string InvokeUrl)
{
    /// <summary>Whose function this is: names are per tenant, and an admin key over every tenant lists each tenant's.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;

    public static FunctionView From(FunctionVersion f) => new(
        f.Name, f.Version, f.Spec.Description, f.Spec.Image, f.ImageDigest, f.Spec.Mode == WarmMode.Fork ? "fork" : "http", f.Spec.Command,
        Quantities.FormatDuration(f.Spec.Resources.Timeout), f.Spec.Concurrency, f.Spec.MinWarm, f.Spec.Max, f.Spec.Queue,
        Quantities.FormatDuration(f.Spec.IdleTimeout), f.Spec.MaxRequestBytes, f.Spec.Output, f.Spec.ContentType, f.DeployedAt, f.DeployedBy,
        FunctionsApi.FunctionUrl(f.Name), FunctionsApi.FunctionUrl(f.Name) + "/invoke")
    {
        Tenant = f.Tenant,
    };
}

/// <summary>What a deploy did: <see cref="Created"/> false when the same content was already the current version.</summary>
public sealed record DeployedView(FunctionView Function, bool Created, int? Replaced);

/// <summary>
/// A function with its versions, its figures per version (and per algorithm version serving
/// it, shadow copies apart), its warm containers, and for a function following
/// <c>algorithm://NAME@stable</c> its gray release.
/// </summary>
public sealed record FunctionDetailView(FunctionView Function, IReadOnlyList<VersionView> Versions, IReadOnlyList<StatsView> Stats, IReadOnlyList<WarmView> Warm)
{
    /// <summary>The window the figures are over (?window=), or null for every kept invocation.</summary>
    public string? Window { get; init; }

    public ReleaseView? Release { get; init; }
}

/// <summary>
/// The gray release of a function that follows an algorithm's stable channel: the versions it is
/// served by now, the canary's share (or shadow share), and the latest channel changes with their
/// reasons (a rollback's is the guard's figures).
/// </summary>
public sealed record ReleaseView(string Algorithm, string Stable, string? Canary, int Percent, bool Shadow, DateTimeOffset? CanarySince, IReadOnlyList<ChannelEvent> Events)
{
    public static ReleaseView From(AlgorithmRoute r, IReadOnlyList<ChannelEvent> events) =>
        new(r.Name, r.Stable.Version, r.Canary?.Version, r.Canary is null ? 0 : r.Percent, r.Canary is not null && r.Shadow, r.CanarySince, events);
}

/// <summary>One version of a function.</summary>
public sealed record VersionView(int Version, string ImageDigest, DateTimeOffset DeployedAt, string DeployedBy);

/// <summary>
/// Requests, errors, error rate and latency of one version (and algorithm version; shadow copies
/// apart, with how many of their outputs equalled stable's answer) over the window.
/// </summary>
public sealed record StatsView(
    int Version, string? AlgorithmVersion, bool Shadow, long Requests, long Errors, double? ErrorRate, double? P50Ms, double? P95Ms, DateTimeOffset? Last, long? Equal, long? Different)
{
    /// <summary>Invocations that waited for their warm container to start, and the p95 of the others (what the canary guard compares).</summary>
    public long ColdStarts { get; init; }

    public double? WarmP95Ms { get; init; }

    /// <summary>Invocations refused before they ran (in <see cref="Errors"/>): a full queue, or for shadow copies the ones dropped.</summary>
    public long Refused { get; init; }

    public static StatsView From(InvocationStats s) => new(
        s.Version, s.AlgorithmVersion, s.Shadow, s.Requests, s.Errors, s.ErrorRate, s.P50Ms, s.P95Ms, s.Last, s.Shadow ? s.Equal : null, s.Shadow ? s.Different : null)
    {
        ColdStarts = s.ColdStarts,
        WarmP95Ms = s.WarmP95Ms,
        Refused = s.Refused,
    };
}

/// <summary>The warm pool's figures of one version (and algorithm version serving it).</summary>
public sealed record WarmView(int Version, int Warm, int Busy, int Starting, int Waiting, long Started, long Replaced)
{
    public string? AlgorithmVersion { get; init; }

    /// <summary>Why fewer containers run than min_warm (or a request waits): its tenant's quota WarmContainers refused a start; null otherwise.</summary>
    public string? Held { get; init; }
}

/// <summary>One recorded invocation.</summary>
public sealed record InvocationView(
    string Id,
    string Function,
    int Version,
    string ImageDigest,
    string Status,
    bool Async,
    string? InputSha256,
    long InputBytes,
    string? OutputSha256,
    long? OutputBytes,
    string? ContentType,
    int? HttpStatus,
    double? LatencyMs,
    string? ContainerId,
    DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt,
    string? Error,
    string Url,
    string? OutputUrl,
    string? AlgorithmVersion,
    string? Route,
    string? ShadowOf,
    bool? ShadowEqual)
{
    /// <summary>Why a queued async invocation waits: a quota of its tenant, and when it is tried again (docs/tenants.md).</summary>
    public string? Held { get; init; }

    public static InvocationView From(InvocationRecord r)
    {
        var url = FunctionsApi.FunctionUrl(r.Function) + "/invocations/" + r.Id;
        return new(r.Id, r.Function, r.Version, r.ImageDigest, InvocationStatuses.Name(r.Status), r.Async, r.InputSha256, r.InputBytes, r.OutputSha256,
            r.OutputBytes, r.ContentType, r.HttpStatus, r.LatencyMs, r.ContainerId, r.StartedAt, r.FinishedAt, r.Error, url,
            r.Async && r.OutputBytes is not null ? url + "/output" : null, r.AlgorithmVersion, r.Route, r.ShadowOf, r.ShadowEqual)
        {
            Held = r.Held,
        };
    }
}
