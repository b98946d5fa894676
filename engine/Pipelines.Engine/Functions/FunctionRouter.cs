using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Pipelines.Algorithms;
using Pipelines.Containers.Warm;
using Pipelines.Tenancy;

namespace Pipelines.Functions;

/// <summary>
/// Where one invocation goes: <see cref="Serving"/> answers the caller (its route
/// <see cref="Route"/>: stable, canary, or null for a function pinned to one image);
/// <see cref="ShadowTo"/>, when set, gets a copy of the request whose answer goes to no one.
/// </summary>
internal sealed record RoutedInvocation(FunctionVersion Serving, string? Route, FunctionVersion? ShadowTo, AlgorithmRoute? Algorithm);

/// <summary>
/// Gray release of functions: a function whose image is <c>algorithm://NAME@stable</c> follows
/// the algorithm's channels per invocation (the channels are read from the catalog each time,
/// so a promote or an abort, by hand or by the <see cref="CanaryGuard"/>, holds from the next
/// invocation on, in every process). With a canary at P%, each invocation goes to the canary
/// with probability P/100 (an independent draw); in shadow mode it goes to stable and, with the
/// same probability, a copy goes to the canary. Any other image (a plain image, or an algorithm
/// named by version or <c>@canary</c>) stays pinned at deploy.
/// </summary>
internal sealed partial class FunctionRouter(ILogger<FunctionRouter> log, AlgorithmService? algorithms = null, IWarmPool? pool = null)
{
    // The owners each function version was last served by in this process, to retire those no longer routed to.
    private readonly ConcurrentDictionary<string, string> _lastOwners = new(StringComparer.Ordinal);

    /// <summary>The algorithm a function follows through its stable channel, or null when it is pinned.</summary>
    public static string? FollowedAlgorithm(FunctionSpec spec)
    {
        if (!AlgorithmReference.IsAlgorithm(spec.Image))
        {
            return null;
        }

        var reference = AlgorithmReference.Parse(spec.Image);
        return reference.Version == AlgorithmReference.Stable ? reference.Name : null;
    }

    public async Task<RoutedInvocation> RouteAsync(FunctionVersion function, CancellationToken cancellationToken)
    {
        if (await ChannelsAsync(function, cancellationToken).ConfigureAwait(false) is not { } channels)
        {
            return new RoutedInvocation(function, null, null, null);
        }

        var (route, stable, canary) = channels;

        RetireUnrouted(function, stable, canary);
        if (canary is null || Random.Shared.Next(100) >= route.Percent)
        {
            return new RoutedInvocation(stable, Routes.Stable, null, route);
        }

        return route.Shadow ? new RoutedInvocation(stable, Routes.Stable, canary, route) : new RoutedInvocation(canary, Routes.Canary, null, route);
    }

    /// <summary>
    /// The function version as each version it is routed to now serves it: itself when it is
    /// pinned to one image; stable, and the canary when there is one (its shadow copies too),
    /// when it follows <c>algorithm://NAME@stable</c>. What a warm container is kept for (min_warm).
    /// </summary>
    public async Task<IReadOnlyList<FunctionVersion>> ServingAsync(FunctionVersion function, CancellationToken cancellationToken) =>
        await ChannelsAsync(function, cancellationToken).ConfigureAwait(false) switch
        {
            { Canary: { } canary } channels => [channels.Stable, canary],
            { } channels => [channels.Stable],
            null => [function],
        };

    /// <summary>The algorithm's channels as they route a function that follows <c>@stable</c>; null for a pinned one.</summary>
    private async Task<(AlgorithmRoute Route, FunctionVersion Stable, FunctionVersion? Canary)?> ChannelsAsync(FunctionVersion function, CancellationToken cancellationToken)
    {
        if (FollowedAlgorithm(function.Spec) is not { } name || algorithms is null)
        {
            return null;
        }

        // The algorithm is the function's tenant's: the same name in another tenant is another algorithm.
        var route = await algorithms.For(TenantScope.Of(function.Tenant)).RouteAsync(name, cancellationToken).ConfigureAwait(false);
        var stable = function.ServedBy(route.Stable.Version, route.Stable.Digest);
        var canary = route.Canary is { } c && c.Version != route.Stable.Version ? function.ServedBy(c.Version, c.Digest) : null;
        return (route, stable, canary);
    }

    /// <summary>
    /// When the versions a function version is served by change (a promote, an abort, a
    /// rollback), the warm containers of the others are stopped: with min_warm they would stay up for no one.
    /// </summary>
    private void RetireUnrouted(FunctionVersion function, FunctionVersion stable, FunctionVersion? canary)
    {
        var key = stable.Owner + "|" + canary?.Owner;
        var mine = function.Owner;
        if (_lastOwners.TryGetValue(mine, out var last) && last == key)
        {
            return;
        }

        _lastOwners[mine] = key;
        if (pool is null)
        {
            return;
        }

        var doomed = pool.Stats().Select(s => s.Owner)
            .Where(o => FunctionVersion.IsOwnerOf(o, function.Tenant, function.Name, function.Version) && o != stable.Owner && o != canary?.Owner)
            .ToList();
        foreach (var owner in doomed)
        {
            // Not on the caller's path: stopping containers takes the engine's time.
            _ = Task.Run(async () =>
            {
                try
                {
                    await pool.RetireAsync(owner, CancellationToken.None).ConfigureAwait(false);
                    LogRetired(log, owner);
                }
                catch (Exception e)
                {
                    LogRetireFailed(log, owner, PipelinesException.Describe(e));
                }
            });
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "warm containers of {Owner} retired: no invocation is routed to that version now")]
    private static partial void LogRetired(ILogger logger, string owner);

    [LoggerMessage(Level = LogLevel.Warning, Message = "the warm containers of {Owner} could not be retired: {Reason}")]
    private static partial void LogRetireFailed(ILogger logger, string owner, string reason);
}
