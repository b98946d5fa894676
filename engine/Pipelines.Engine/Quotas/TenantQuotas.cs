using Microsoft.Extensions.Logging;
using Pipelines.Tenancy;

namespace Pipelines.Quotas;

/// <summary>A quota that stopped a piece of work for now: which one, how long until it may allow it, and what to tell the caller.</summary>
/// <param name="Quota">The quota's key, e.g. <c>InvocationsPerMinute</c>.</param>
public sealed record QuotaRefusal(string Quota, TimeSpan RetryAfter, string Detail)
{
    /// <summary>Whole seconds, as the <c>Retry-After</c> header takes them.</summary>
    public int RetryAfterSeconds => (int)Math.Ceiling(RetryAfter.TotalSeconds);

    /// <summary>Whether the tenant's budget refused it, rather than a quota.</summary>
    public bool IsBudget => Quota == TenantBudgets.Key;

    /// <summary>What refused it, as the hold and the refused invocation say: <c>budget</c> or <c>quota NAME</c>.</summary>
    public string What => IsBudget ? "budget" : $"quota {Quota}";
}

/// <summary>
/// The one home of the running-work quotas a request meets (docs/tenants.md, "Quotas"): the
/// tenant's budget (<see cref="TenantBudgets"/>), its concurrent invocations, invocations per
/// minute and warm containers, read from its settings (<see cref="TenantOptions.Settings"/>) and counted in <see cref="ITenantLimits"/>.
/// The callers decide what a refusal means: a synchronous invoke answers 429, an async
/// invocation waits and tries again.
/// </summary>
public sealed partial class TenantQuotas
{
    /// <summary>How long a caller refused for concurrency is told to wait: a slot frees when any running invocation ends.</summary>
    public static readonly TimeSpan ConcurrencyRetry = TimeSpan.FromSeconds(1);

    /// <summary>How long a caller refused a warm container is told to wait: one frees when another of the tenant's idles out or is retired.</summary>
    public static readonly TimeSpan WarmRetry = TimeSpan.FromSeconds(5);

    private readonly ITenantLimits limits;
    private readonly TenantOptions tenants;
    private readonly TimeProvider time;
    private readonly ILogger log;
    private readonly TenantBudgets? budgets;

    internal TenantQuotas(ITenantLimits limits, TenantOptions tenants, TimeProvider time, ILogger<TenantQuotas> log, TenantBudgets? budgets = null)
    {
        this.limits = limits;
        this.tenants = tenants;
        this.time = time;
        this.log = log;
        this.budgets = budgets;
    }

    private QuotaSettings Of(TenantId tenant) => tenants.Exists(tenant) ? tenants.Settings(tenant).Quotas : new QuotaSettings();

    /// <summary>
    /// Admits one invocation of <paramref name="tenant"/>: a budget not spent, a running slot held by
    /// <paramref name="holder"/> (until <see cref="EndInvocationAsync"/>), then a token of the rate.
    /// Null when admitted; else the budget or quota that refused it, and nothing is taken: a request
    /// refused by the budget or for concurrency spends no token, and one refused for the rate holds no slot.
    /// </summary>
    public async Task<QuotaRefusal?> AdmitInvocationAsync(TenantId tenant, string holder, CancellationToken cancellationToken)
    {
        if (budgets is not null && budgets.Refusal(await budgets.BalanceAsync(tenant, cancellationToken).ConfigureAwait(false)) is { } spent)
        {
            return spent;
        }

        var quotas = Of(tenant);
        if (quotas.ConcurrentInvocations is { } running
            && !await limits.TryAcquireAsync(tenant, LimitKind.Invocations, holder, running, cancellationToken).ConfigureAwait(false))
        {
            return new QuotaRefusal(
                nameof(QuotaSettings.ConcurrentInvocations),
                ConcurrencyRetry,
                $"this tenant has {running} invocation{(running == 1 ? "" : "s")} running, its quota ConcurrentInvocations: try again when one has ended");
        }

        if (quotas.InvocationsPerMinute is { } rate
            && await limits.TakeAsync(tenant, rate, time.GetUtcNow(), cancellationToken).ConfigureAwait(false) is { } wait)
        {
            if (quotas.ConcurrentInvocations is not null)
            {
                await limits.ReleaseAsync(tenant, LimitKind.Invocations, holder, cancellationToken).ConfigureAwait(false);
            }

            return new QuotaRefusal(
                nameof(QuotaSettings.InvocationsPerMinute),
                wait,
                $"this tenant's quota InvocationsPerMinute ({rate} a minute) is spent for now: the next invocation is allowed in {Math.Ceiling(wait.TotalSeconds)} s");
        }

        return null;
    }

    /// <summary>
    /// An admitted invocation ended (however it ended): its running slot is given back before this
    /// returns, so the caller's next request finds it free. An outage of the counters is waited
    /// out with backoff off the caller's path (the slot would otherwise stay held for as long as this process lives).
    /// </summary>
    public async Task EndInvocationAsync(TenantId tenant, string holder)
    {
        if (Of(tenant).ConcurrentInvocations is null)
        {
            return;
        }

        try
        {
            await limits.ReleaseAsync(tenant, LimitKind.Invocations, holder, CancellationToken.None).ConfigureAwait(false);
        }
        catch (PipelinesException e) when (e.RetryHelps)
        {
            LogReleaseWaits(log, holder, tenant.Value, 1, 1, e.Message);
            _ = ReleaseLaterAsync(tenant, LimitKind.Invocations, holder);
        }
    }

    /// <summary>
    /// Takes a warm-container slot of <paramref name="tenant"/> for <paramref name="holder"/> (one
    /// container about to start, until <see cref="EndWarmAsync"/>): null when taken, or when the
    /// tenant has no WarmContainers quota; else the refusal naming the quota. An outage of the
    /// counters is thrown (retry helps), never a refusal.
    /// </summary>
    public async Task<QuotaRefusal?> TakeWarmAsync(TenantId tenant, string holder, CancellationToken cancellationToken)
    {
        if (Of(tenant).WarmContainers is not { } warm
            || await limits.TryAcquireAsync(tenant, LimitKind.WarmContainers, holder, warm, cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        return new QuotaRefusal(
            nameof(QuotaSettings.WarmContainers),
            WarmRetry,
            $"this tenant has {warm} warm container{(warm == 1 ? "" : "s")}, its quota WarmContainers: another starts when one of its functions' containers idles out or is retired");
    }

    /// <summary>
    /// A warm container that held a slot is gone (stopped, killed, crashed, its pool disposed): the
    /// slot is given back, an outage waited out with backoff off the caller's path, as for an invocation's.
    /// </summary>
    public async Task EndWarmAsync(TenantId tenant, string holder)
    {
        try
        {
            await limits.ReleaseAsync(tenant, LimitKind.WarmContainers, holder, CancellationToken.None).ConfigureAwait(false);
        }
        catch (PipelinesException e) when (e.RetryHelps)
        {
            LogReleaseWaits(log, holder, tenant.Value, 1, 1, e.Message);
            _ = ReleaseLaterAsync(tenant, LimitKind.WarmContainers, holder);
        }
    }

    private async Task ReleaseLaterAsync(TenantId tenant, LimitKind kind, string holder)
    {
        var wait = TimeSpan.FromSeconds(1);
        for (var attempt = 2; ; attempt++)
        {
            await Task.Delay(wait, time).ConfigureAwait(false);
            wait = TimeSpan.FromSeconds(Math.Min(60, wait.TotalSeconds * 2));
            try
            {
                await limits.ReleaseAsync(tenant, kind, holder, CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (PipelinesException e) when (e.RetryHelps)
            {
                LogReleaseWaits(log, holder, tenant.Value, attempt, wait.TotalSeconds, e.Message);
            }
            catch (Exception e)
            {
                LogReleaseFailed(log, holder, tenant.Value, PipelinesException.Describe(e));
                return;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "the quota slot of {Holder} (tenant {Tenant}) could not be given back, try {Attempt}; again in {Seconds} s: {Reason}")]
    private static partial void LogReleaseWaits(ILogger logger, string holder, string tenant, int attempt, double seconds, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "the quota slot of {Holder} (tenant {Tenant}) could not be given back: {Reason}; it stays held until this process stops")]
    private static partial void LogReleaseFailed(ILogger logger, string holder, string tenant, string reason);
}
