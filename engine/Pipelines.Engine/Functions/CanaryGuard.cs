using System.Globalization;
using Microsoft.Extensions.Logging;
using Pipelines.Algorithms;
using Pipelines.Model;
using Pipelines.Tenancy;

namespace Pipelines.Functions;

/// <summary>
/// The one home of automatic rollback. After each invocation the canary served (or each shadow
/// copy it ran) it compares, for that function version, the canary's figures with stable's over
/// the last Algorithms:Canary:Window since the canary was set, from the one stats query; when
/// the canary is worse by more than the margins (<see cref="CanaryOptions"/>) it aborts the
/// canary as <c>auto-rollback</c>, with the figures as the recorded reason.
/// </summary>
internal sealed partial class CanaryGuard(AlgorithmService algorithms, IFunctionStore store, AlgorithmOptions options, TimeProvider time, ILogger<CanaryGuard> log)
{
    /// <summary>Who a rollback is recorded as having been done by.</summary>
    public const string Who = "auto-rollback";

    /// <summary>Checks the canary of <paramref name="route"/> for one function version; the reason when it was rolled back, else null.</summary>
    public async Task<string?> CheckAsync(FunctionVersion function, AlgorithmRoute route, CancellationToken cancellationToken)
    {
        var o = options.Canary;
        if (!o.AutoRollback || route.Canary is not { } canary)
        {
            return null;
        }

        var now = time.GetUtcNow();
        var since = route.CanarySince is { } set && set > now - o.Window ? set : now - o.Window;
        var stats = (await store.For(TenantScope.Of(function.Tenant)).StatsAsync(function.Name, since, cancellationToken).ConfigureAwait(false)).Where(s => s.Version == function.Version).ToList();
        var why = Verdict(
            stats.FirstOrDefault(s => s.Shadow == route.Shadow && s.AlgorithmVersion == canary.Version),
            stats.FirstOrDefault(s => !s.Shadow && s.AlgorithmVersion == route.Stable.Version),
            o);
        if (why is null)
        {
            return null;
        }

        var reason = $"{(route.Shadow ? "shadow " : "")}canary {canary.Version} of function {function.Name} (version {function.Version.ToString(CultureInfo.InvariantCulture)}): {why}, over the {Quantities.FormatDuration(now - since)} since {since.UtcDateTime:u}";
        if (!await algorithms.For(TenantScope.Of(function.Tenant)).AbortCanaryAsync(route.Name, Who, reason, canary.Version, cancellationToken).ConfigureAwait(false))
        {
            // Another invocation's check (or a person) ended it first.
            return null;
        }

        LogRolledBack(log, route.Name, canary.Version, reason);
        return reason;
    }

    /// <summary>Why the canary's figures fail against stable's under <paramref name="o"/>, or null when they pass or are too few.</summary>
    public static string? Verdict(InvocationStats? canary, InvocationStats? stable, CanaryOptions o)
    {
        // What ran is judged: a refusal (a full queue, a dropped shadow copy) is not the version's doing.
        if (canary is null || canary.Ran < o.MinRequests)
        {
            return null;
        }

        var rate = canary.RanErrorRate ?? 0;
        var stableRate = stable?.RanErrorRate ?? 0;
        if (rate - stableRate > o.MaxErrorRateIncrease)
        {
            return $"error rate {Percent(rate)} over {canary.Ran} ended invocation(s), stable's {Percent(stableRate)} over {stable?.Ran ?? 0}: "
                + $"more than {Points(o.MaxErrorRateIncrease)} over (Algorithms:Canary:MaxErrorRateIncrease)";
        }

        // Without cold starts: a canary's first requests wait for its containers to start, stable's were warm long ago.
        if (stable is { WarmP95Ms: { } stableP95 } && stable.Ran >= o.MinRequests && canary.WarmP95Ms is { } p95
            && p95 > stableP95 * o.MaxP95Ratio && p95 - stableP95 > o.MaxP95IncreaseMs)
        {
            return $"p95 latency {Ms(p95)} (without cold starts) over {canary.Ran} ended invocation(s), stable's {Ms(stableP95)} over {stable.Ran}: "
                + $"more than {o.MaxP95Ratio.ToString("0.##", CultureInfo.InvariantCulture)} times (Algorithms:Canary:MaxP95Ratio) and {Ms(o.MaxP95IncreaseMs)} more (Algorithms:Canary:MaxP95IncreaseMs)";
        }

        return null;
    }

    private static string Percent(double rate) => (rate * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    private static string Points(double rate) => (rate * 100).ToString("0.##", CultureInfo.InvariantCulture) + " points";

    private static string Ms(double ms) => ms.ToString("0.#", CultureInfo.InvariantCulture) + " ms";

    [LoggerMessage(Level = LogLevel.Warning, Message = "algorithm {Name}: canary {Version} rolled back automatically: {Reason}")]
    private static partial void LogRolledBack(ILogger logger, string name, string version, string reason);
}
