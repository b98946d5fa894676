using Pipelines.Tenancy;

namespace Pipelines.Quotas;

/// <summary>What a tenant holds a counted slot of: running invocations, warm containers.</summary>
internal enum LimitKind
{
    /// <summary>An invocation running (synchronous or asynchronous): Quotas:ConcurrentInvocations.</summary>
    Invocations,

    /// <summary>A warm container kept for one of the tenant's functions: Quotas:WarmContainers.</summary>
    WarmContainers,
}

/// <summary>
/// The counters behind a tenant's running-work quotas, shared by every process of a cluster
/// (PostgreSQL) or kept by the one embedded process (in memory), one contract for both
/// (docs/tenants.md, "Quotas"): slots held by name, counted and taken in one step so that two
/// processes never both take the last one, and a token bucket for a rate. A process that dies
/// holding slots leaves them for a while only: the cluster's store gives them back once the
/// process has been unseen for <see cref="PostgresTenantLimits.DeadAfter"/>.
/// </summary>
internal interface ITenantLimits
{
    /// <summary>
    /// Takes a slot of <paramref name="kind"/> for <paramref name="holder"/> when the tenant holds
    /// fewer than <paramref name="limit"/>; false when it holds that many. A holder that already
    /// has its slot keeps it (true): a redelivered job takes no second one.
    /// </summary>
    Task<bool> TryAcquireAsync(TenantId tenant, LimitKind kind, string holder, int limit, CancellationToken cancellationToken);

    /// <summary>Gives a holder's slot back; nothing when it has none (released twice, or swept).</summary>
    Task ReleaseAsync(TenantId tenant, LimitKind kind, string holder, CancellationToken cancellationToken);

    /// <summary>How many slots of <paramref name="kind"/> the tenant holds now.</summary>
    Task<int> HeldAsync(TenantId tenant, LimitKind kind, CancellationToken cancellationToken);

    /// <summary>
    /// Takes one token of the tenant's bucket, which holds <paramref name="perMinute"/> tokens and
    /// refills evenly at that rate: null when a token was taken, else how long until one is there
    /// (the <c>Retry-After</c>, at least a second). <paramref name="now"/> is the caller's clock.
    /// </summary>
    Task<TimeSpan?> TakeAsync(TenantId tenant, int perMinute, DateTimeOffset now, CancellationToken cancellationToken);
}

/// <summary>The token bucket's arithmetic, the one home of it for both stores (the PostgreSQL one writes it in SQL and is tested against the same contract).</summary>
internal static class TokenBucket
{
    /// <summary>The tokens of a bucket of <paramref name="perMinute"/> that held <paramref name="tokens"/> <paramref name="elapsed"/> ago.</summary>
    public static double Refilled(double tokens, TimeSpan elapsed, int perMinute) =>
        Math.Min(perMinute, tokens + (Math.Max(0, elapsed.TotalSeconds) * perMinute / 60));

    /// <summary>How long until a bucket holding <paramref name="tokens"/> has one: at least a second, as Retry-After counts whole seconds.</summary>
    /// <remarks>Rounded to the microsecond first, so that the float's last bit (20.000000000000004 s) does not add a second.</remarks>
    public static TimeSpan RetryAfter(double tokens, int perMinute) =>
        TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(Math.Round((1 - tokens) * 60 / perMinute, 6))));
}
