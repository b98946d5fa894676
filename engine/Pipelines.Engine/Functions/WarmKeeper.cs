using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Harvest;
using Pipelines.Worker;

namespace Pipelines.Functions;

/// <summary>
/// Warm means warm (docs/functions.md, "min_warm"): in a process that serves functions, each
/// function's <c>min_warm</c> containers start when the function is deployed here and when the
/// process starts, and are replaced when they die (the pool tops an owner up to its MinWarm after
/// a replacement; this looks again every Functions:KeepWarmInterval, for a start that failed and
/// for a deploy made by another process); the pool never idles an owner below its MinWarm. The
/// containers of versions no longer routed to (deployed again or deleted elsewhere, a canary
/// promoted or aborted) are retired once idle, since min_warm would keep them up for no one.
/// Only where the process lends its CPU whatever the machine does (no harvester, or policy
/// always): under when-idle a container starts only when a request is admitted.
/// </summary>
internal sealed partial class WarmKeeper(
    IFunctionStore store,
    FunctionRouter router,
    IContainerRuntime runtime,
    WorkerOptions worker,
    FunctionsOptions options,
    TimeProvider time,
    ILogger<WarmKeeper> log,
    IWarmPool? pool = null,
    Harvester? harvester = null) : BackgroundService
{
    /// <summary>Why this process keeps no container warm ahead of its requests, or null when it does.</summary>
    public string? WhyNot => pool is null ? "it has no warm container pool (no Docker engine)"
        : harvester is { Policy: not HarvestPolicy.Always } ? $"its harvesting policy is {Harvester.Name(harvester.Policy)}: a container starts only when a request is admitted"
        : null;

    /// <summary>Starts the min_warm containers of the versions <paramref name="function"/> is routed to now (a deploy). Never throws but for a cancel: a start that cannot be made is logged.</summary>
    public async Task KeepAsync(FunctionVersion function, CancellationToken cancellationToken)
    {
        if (WhyNot is not null || function.Spec.MinWarm == 0)
        {
            return;
        }

        try
        {
            foreach (var served in await router.ServingAsync(function, cancellationToken).ConfigureAwait(false))
            {
                await WarmAsync(served, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogNotWarmed(log, function.Owner, PipelinesException.Describe(e));
        }
    }

    /// <summary>One round over every function's current version: warm what min_warm asks for, retire what no one is routed to.</summary>
    internal async Task KeepAllAsync(CancellationToken cancellationToken)
    {
        if (WhyNot is not null)
        {
            return;
        }

        // Owners made after this look (a deploy meanwhile) are never taken for unrouted ones.
        var before = pool!.Stats();
        var routed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var function in await store.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            foreach (var served in await router.ServingAsync(function, cancellationToken).ConfigureAwait(false))
            {
                routed.Add(served.Owner);
                if (function.Spec.MinWarm > 0)
                {
                    await WarmAsync(served, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        var now = pool.Stats().ToDictionary(s => s.Owner, StringComparer.Ordinal);
        foreach (var owner in before.Select(s => s.Owner).Where(o => FunctionVersion.IsFunctionOwner(o) && !routed.Contains(o)))
        {
            if (!now.TryGetValue(owner, out var idle) || idle is not { Busy: 0, Starting: 0, Waiting: 0 })
            {
                continue;
            }

            await pool.RetireAsync(idle.Owner, cancellationToken).ConfigureAwait(false);
            LogRetired(log, idle.Owner);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (WhyNot is { } why)
        {
            LogNotKept(log, why);
            return;
        }

        using var timer = new PeriodicTimer(options.KeepWarmInterval, time);
        do
        {
            try
            {
                await KeepAllAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // PostgreSQL or the Docker engine out of reach: the next round tries again.
                LogRoundFailed(log, PipelinesException.Describe(e));
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>The image on the engine (loaded or pulled once), then the pool starts what min_warm lacks, in the background.</summary>
    private async Task WarmAsync(FunctionVersion function, CancellationToken cancellationToken)
    {
        try
        {
            var secrets = worker.SecretsFor(function.Tenant, function.Name, function.Spec.Secrets);
            await runtime.EnsureImageAsync(function.ImageDigest, cancellationToken, recentlySeenWillDo: true, pullFrom: function.Spec.Image).ConfigureAwait(false);
            pool!.Prewarm(FunctionInvoker.WarmSpecOf(function, secrets, worker), function.Spec.MinWarm);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // A missing secret or image: said here, and to each request that meets it. A registry
            // or engine out of reach too, for this function only: the others of the round are
            // still warmed and retired, and the next round tries this one again.
            LogNotWarmed(log, function.Owner, PipelinesException.Describe(e));
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "function containers are not kept warm ahead of requests in this process: {Why}")]
    private static partial void LogNotKept(ILogger logger, string why);

    [LoggerMessage(Level = LogLevel.Warning, Message = "the min_warm containers of {Owner} could not be started: {Reason}")]
    private static partial void LogNotWarmed(ILogger logger, string owner, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "warm containers of {Owner} retired: that version is no longer deployed or routed to")]
    private static partial void LogRetired(ILogger logger, string owner);

    [LoggerMessage(Level = LogLevel.Warning, Message = "keeping functions warm: {Error}; trying again at the next round")]
    private static partial void LogRoundFailed(ILogger logger, string error);
}
