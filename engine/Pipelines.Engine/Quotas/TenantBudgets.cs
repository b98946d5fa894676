using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.Quotas;

/// <summary>
/// A tenant's budget for the period it is in (docs/tenants.md, Budgets): the amount, what the
/// tenant's usage records that ended in the period cost by its price sheet, and the balance.
/// </summary>
/// <param name="Period"><see cref="BudgetSettings.Month"/> or <see cref="BudgetSettings.Total"/>.</param>
/// <param name="From">The period's start (null for total: all the tenant's usage).</param>
/// <param name="Until">The period's end, when the budget is whole again (null for total: never by itself).</param>
public sealed record BudgetBalance(TenantId Tenant, double Amount, string Period, DateTimeOffset? From, DateTimeOffset? Until, double Spent, string Currency)
{
    /// <summary>What is left: the amount less what was spent; at zero or below new work waits.</summary>
    public double Balance => Amount - Spent;

    /// <summary>Whether the budget is spent: new work waits until it is positive again.</summary>
    public bool IsSpent => Balance <= 0;

    /// <summary>The period as people read it: <c>2026-12</c> for a month, <c>total</c> otherwise.</summary>
    public string PeriodName => From is { } from && Period == BudgetSettings.Month ? from.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture) : Period;

    /// <summary>What the hold and the refusal say: spent against the amount, in the sheet's currency.</summary>
    public string Detail => string.Create(CultureInfo.InvariantCulture,
        $"the tenant spent {Spent:0.##########} {Currency} of its budget of {Amount:0.##########} {Currency} for {PeriodName} (Budget:Amount)");
}

/// <summary>
/// The one home of the budget rule (docs/tenants.md, Budgets): a tenant's balance is its
/// <c>Budget:Amount</c> less the cost of its usage records that ended in the period (the calendar
/// month in UTC, or all time), priced in C# by its sheet (<see cref="PriceSheet.Cost(IEnumerable{UsageRow})"/>);
/// the ledger only sums. Balances are kept for <see cref="CacheFor"/>, so the dispatcher's looks and
/// the invocations do not read the ledger each time: work that ends is seen spent within it.
/// </summary>
public sealed partial class TenantBudgets : IDisposable
{
    /// <summary>How long a balance read from the ledger is used before it is read again.</summary>
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(3);

    /// <summary>The longest a refused caller is told to wait: a raised budget (the configuration file changed) is seen by then.</summary>
    public static readonly TimeSpan Recheck = TimeSpan.FromSeconds(10);

    /// <summary>The key a refusal names (<see cref="QuotaRefusal.Quota"/>).</summary>
    public const string Key = "Budget";

    private readonly IUsageStore usage;
    private readonly PriceSheets prices;
    private readonly TimeProvider time;
    private TenantOptions tenants;
    private IDisposable? _following;
    private readonly ConcurrentDictionary<TenantId, (BudgetBalance Balance, DateTimeOffset Until)> _cache = new();

    internal TenantBudgets(IUsageStore usage, PriceSheets prices, TenantOptions tenants, TimeProvider time)
    {
        this.usage = usage;
        this.prices = prices;
        this.tenants = tenants;
        this.time = time;
    }

    /// <summary>The tenant's budget settings; a tenant not configured has the defaults (as its quotas).</summary>
    private BudgetSettings Of(TenantId tenant)
    {
        var now = Volatile.Read(ref tenants);
        return now.Exists(tenant) ? now.Settings(tenant).Budget : now.Tenancy.Defaults.Budget;
    }

    /// <summary>
    /// Follows <paramref name="config"/>: when a file it was read from changes (EngineHost.Configuration
    /// with reloadOnChange), the tenants' budgets (<c>Tenants:ID:Budget</c>, <c>Tenancy:Defaults:Budget</c>)
    /// are read again and the kept balances dropped, so a raised budget releases held work at the
    /// dispatcher's next look, without a restart. Only budgets follow: everything else is read once at start.
    /// </summary>
    public void Follow(IConfiguration config, Func<string, bool> localAllowed, ILogger log)
    {
        _following?.Dispose();
        _following = ChangeToken.OnChange(config.GetReloadToken, () => Reload(config, localAllowed, log));
    }

    /// <summary>Stops following the configuration (the host's end: a server built again in the same process follows its own).</summary>
    public void Dispose()
    {
        _following?.Dispose();
        _following = null;
    }

    /// <summary>
    /// Reads the budgets again from <paramref name="config"/>. Refused, keeping the budgets it has,
    /// when the settings cannot be used (naming the key, as at start) or when the tenants listed are
    /// not the ones the process started with (a tenant added or removed needs a restart; a file read
    /// while half written lists none).
    /// </summary>
    internal bool Reload(IConfiguration config, Func<string, bool> localAllowed, ILogger log)
    {
        TenantOptions fresh;
        try
        {
            fresh = TenantOptions.From(config, localAllowed);
        }
        catch (Exception e)
        {
            // On the file watcher's thread: whatever the changed file holds, it is logged, never a crash.
            LogNotReloaded(log, e.Message);
            return false;
        }

        var before = Volatile.Read(ref tenants);
        if (!fresh.All.Select(t => t.Id).SequenceEqual(before.All.Select(t => t.Id)))
        {
            LogNotReloaded(log, $"the tenants listed changed (now {string.Join(", ", fresh.All.Select(t => t.Id.Value))}): adding or removing a tenant needs a restart");
            return false;
        }

        var changed = fresh.All.Where(t => t.Budget != before.Settings(t.Id).Budget).Select(t => $"{t.Id}: {t.Budget.Amount?.ToString(CultureInfo.InvariantCulture) ?? "none"} a {t.Budget.Period}").ToList();
        Volatile.Write(ref tenants, fresh);
        _cache.Clear();
        if (changed.Count > 0)
        {
            LogReloaded(log, string.Join("; ", changed));
        }

        return true;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "budgets: read again from the changed configuration: {Changes}")]
    private static partial void LogReloaded(ILogger logger, string changes);

    [LoggerMessage(Level = LogLevel.Error, Message = "budgets: the changed configuration was not taken, the budgets stay as they were: {Error}")]
    private static partial void LogNotReloaded(ILogger logger, string error);

    /// <summary>Whether the tenant has a budget at all (no ledger read for one that has none).</summary>
    public bool Has(TenantId tenant) => Of(tenant).Amount is not null;

    /// <summary>The tenant's balance now; null when it has no budget. Read from the ledger at most every <see cref="CacheFor"/>.</summary>
    public async Task<BudgetBalance?> BalanceAsync(TenantId tenant, CancellationToken cancellationToken)
    {
        var settings = Of(tenant);
        if (settings.Amount is not { } amount)
        {
            return null;
        }

        var now = time.GetUtcNow();
        if (_cache.TryGetValue(tenant, out var kept) && now < kept.Until && (kept.Balance.Until is not { } end || now < end))
        {
            return kept.Balance;
        }

        var period = settings.Period.ToLowerInvariant();
        var (from, until) = PeriodOf(period, now);
        var sheet = prices.For(tenant);
        var rows = await usage.For(TenantScope.Of(tenant)).AggregateAsync(new UsageQuery(from, until), cancellationToken).ConfigureAwait(false);
        var balance = new BudgetBalance(tenant, amount, period, from, until, sheet.Cost(rows), sheet.Currency);
        _cache[tenant] = (balance, now + CacheFor);
        return balance;
    }

    /// <summary>
    /// The period <paramref name="now"/> is in: a month runs from its 1st, 00:00 UTC, to the next
    /// month's; total has no bounds.
    /// </summary>
    public static (DateTimeOffset? From, DateTimeOffset? Until) PeriodOf(string period, DateTimeOffset now)
    {
        if (period != BudgetSettings.Month)
        {
            return (null, null);
        }

        var u = now.UtcDateTime;
        var from = new DateTimeOffset(u.Year, u.Month, 1, 0, 0, 0, TimeSpan.Zero);
        return (from, from.AddMonths(1));
    }

    /// <summary>
    /// How long a caller refused by a spent budget is told to wait: until the period's end, but
    /// never more than <see cref="Recheck"/> (the budget may be raised), and at least a second.
    /// </summary>
    public static TimeSpan RetryAfter(BudgetBalance balance, DateTimeOffset now)
    {
        var wait = balance.Until is { } end && end - now < Recheck ? end - now : Recheck;
        return wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : wait;
    }

    /// <summary>The refusal of a spent budget, as a quota's (a sync invoke's 429, an async invocation's hold); null while it is positive.</summary>
    public QuotaRefusal? Refusal(BudgetBalance? balance) =>
        balance is { IsSpent: true } b ? new QuotaRefusal(Key, RetryAfter(b, time.GetUtcNow()), $"{b.Detail}: new work waits until the budget is raised or a new period begins") : null;
}
