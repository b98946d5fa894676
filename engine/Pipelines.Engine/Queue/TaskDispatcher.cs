using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pipelines.Quotas;
using Pipelines.RunStore;
using Pipelines.Tenancy;

namespace Pipelines.Queue;

/// <summary>
/// Releases pending tasks into Hangfire's queue as worker slots free up (docs/tenants.md, Fair
/// share): free slots are the slots the live workers offer now (<see cref="WorkerSlots"/>: their
/// harvesters' allowed slots, else their configured ones) plus a prefetch of one per offered slot,
/// less the tasks in flight; they go to tenants by <see cref="FairShare"/> (or first come, first served with
/// <c>Tenancy:FairShare</c> false), and a tenant at its running-tasks quota gets none: its
/// pending tasks show held with the reason "quota"; nor does a tenant whose budget is spent
/// (<see cref="TenantBudgets"/>): held with the reason "budget"; when live workers offer no slot at all (their
/// owners are busy, their policy is never, they drain), every pending task shows held with the
/// first such worker's reason and words. Runs asked to stop have their pending tasks ended at
/// once, in one statement, not one job each. Its last look is <see cref="Pending"/>, the
/// pipelines.tasks.pending gauge, and <see cref="Held"/>, why they wait (the
/// pipelines.tasks.pending.held gauge). Async invocations share the slots, released by the same fair
/// share (<see cref="InvocationRelease"/>); those a look leaves waiting are told why (their held).
/// </summary>
/// <remarks>
/// One dispatcher acts per run store: with PostgreSQL, the process that holds the session
/// advisory lock 7310023 (beside the queue watchdog's 7310022) on the connection that also
/// listens for <see cref="DispatchSignal.Channel"/>; the others wait for the lock. Embedded, the
/// process's own. A new leader first releases again the tasks released before it led and still
/// queued (a leader that died between its release and its enqueue); a second job for a task is
/// harmless (the claim). An enqueue that fails is tried again at the next tick.
/// </remarks>
internal sealed partial class TaskDispatcher(
    IRunStore store,
    HangfireTaskQueue hangfire,
    WorkerSlots workers,
    DispatchSignal signal,
    TenantOptions tenants,
    TimeProvider time,
    ILogger<TaskDispatcher> log,
    NpgsqlDataSource? dataSource = null,
    string schema = "pipelines",
    TenantBudgets? budgets = null,
    InvocationRelease? invocations = null) : BackgroundService
{
    /// <summary>The advisory lock of the one acting dispatcher, with the run store schema's hash as its second key.</summary>
    private const int LeadLock = 7310023;

    private const string Dispatcher = "dispatcher";

    private readonly FairShare _share = new(time, tenants.Tenancy.HalfLife);
    private readonly List<TaskKey> _unenqueued = [];
    private readonly HashSet<TenantId> _quotaHeld = [];
    private readonly Dictionary<TenantId, string> _harvestHeld = [];
    private readonly HashSet<TenantId> _budgetHeld = [];

    // A new lead does not know which budget marks the one before left: its first look clears those of every tenant not spent.
    private bool _budgetsUnknown = true;
    private IReadOnlyList<(TenantId Tenant, int Pending)> _pending = [];
    private IReadOnlyList<(TenantId Tenant, string Reason, int Held)> _held = [];
    private readonly Dictionary<(TenantId Tenant, string Reason), int> _holding = [];

    /// <summary>
    /// Each tenant's pending tasks (not released yet) as this dispatcher's last look counted them,
    /// before it released any, while it leads; empty when it does not (the leading process's
    /// dispatcher reports them).
    /// </summary>
    public IReadOnlyList<(TenantId Tenant, int Pending)> Pending => Volatile.Read(ref _pending);

    /// <summary>
    /// Each tenant's pending tasks this dispatcher's last look left held, by the reason it marked them
    /// with (<see cref="HoldReasons"/>: quota, budget, or the holding worker's owner_load, policy or
    /// drain), after its release: the marks `status` and the run page show, counted. Every configured
    /// tenant reads 0 for each reason with none held; empty when this process does not lead.
    /// </summary>
    public IReadOnlyList<(TenantId Tenant, string Reason, int Held)> Held => Volatile.Read(ref _held);

    private TimeSpan Interval => tenants.Tenancy.DispatchInterval;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (dataSource is null)
                {
                    await LeadAsync(stoppingToken).ConfigureAwait(false);
                }
                else
                {
                    await LeadIfFirstAsync(dataSource, stoppingToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (Outage.Is(e) && !stoppingToken.IsCancellationRequested)
            {
                // An outage ends this lead: the lock went with the connection; try again later.
                LogOutage(log, e.Message);
            }

            try
            {
                await Task.Delay(Interval * 5, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Leads while this process holds the lock (returns at once when another does).</summary>
    private async Task LeadIfFirstAsync(NpgsqlDataSource db, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using (var lockCmd = new NpgsqlCommand("SELECT pg_try_advisory_lock(@k, hashtext(@schema))", conn))
        {
            lockCmd.Parameters.AddWithValue("k", LeadLock);
            lockCmd.Parameters.AddWithValue("schema", schema);
            if (await lockCmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is not true)
            {
                return;
            }
        }

        await using (var listen = new NpgsqlCommand($"LISTEN {DispatchSignal.Channel}", conn))
        {
            await listen.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        conn.Notification += (_, _) => signal.Pulse();
        using var lead = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var listening = ListenAsync(conn, lead.Token);
        try
        {
            await LeadAsync(lead.Token, listening).ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _pending, []);
            Volatile.Write(ref _held, []);
            await lead.CancelAsync().ConfigureAwait(false);
            try
            {
                await listening.ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or NpgsqlException)
            {
                // The lead is over either way; the lock goes with the connection.
            }
        }
    }

    private static async Task ListenAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await conn.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    private async Task LeadAsync(CancellationToken ct, Task? listening = null)
    {
        LogLeading(log);
        _budgetsUnknown = true;
        var since = time.GetUtcNow();
        _share.Restore(await store.ReadTenantUsageAsync(ct).ConfigureAwait(false));
        IReadOnlyList<TaskKey> stuck;
        do
        {
            stuck = await store.ReleaseStuckAsync(since, time.GetUtcNow(), 1000, ct).ConfigureAwait(false);
            await EnqueueAsync(stuck, ct).ConfigureAwait(false);
        }
        while (stuck.Count == 1000);

        while (!ct.IsCancellationRequested && listening is not { IsCompleted: true })
        {
            await TickAsync(ct).ConfigureAwait(false);
            try
            {
                await signal.WaitAsync(Interval, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
        }

        // The listening connection ended (an outage): its exception ends this lead.
        if (listening is { IsFaulted: true })
        {
            await listening.ConfigureAwait(false);
        }
    }

    /// <summary>One look: stopping runs' pending tasks ended, quotas marked, free slots filled. Returns how many tasks it released.</summary>
    public async Task<int> TickAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (_unenqueued.Count > 0)
        {
            var again = _unenqueued.ToList();
            _unenqueued.Clear();
            await EnqueueAsync(again, ct).ConfigureAwait(false);
        }

        foreach (var runId in await store.StoppingWithPendingAsync(ct).ConfigureAwait(false))
        {
            var reason = (await store.GetRunAsync(runId, ct).ConfigureAwait(false))?.StopReason ?? "run stopped";
            var (ended, remaining) = await store.CancelPendingAsync(runId, StopReasons.NotStarted(reason, now), ct).ConfigureAwait(false);
            if (ended > 0 && remaining == 0)
            {
                await hangfire.EnqueueGatherAsync(runId, ct).ConfigureAwait(false);
            }
        }

        var loads = await store.TenantLoadsAsync(ct).ConfigureAwait(false);

        // Every configured tenant reads 0 when it has nothing waiting, rather than dropping out of the gauge.
        var pending = tenants.All.ToDictionary(t => t.Id, _ => 0);
        foreach (var l in loads)
        {
            pending[l.Tenant] = l.Pending;
        }

        Volatile.Write(ref _pending, [.. pending.Select(p => (p.Key, p.Value))]);
        _holding.Clear();
        var invocationLoads = invocations is null ? [] : await invocations.LoadsAsync(ct).ConfigureAwait(false);
        _share.Account(InvocationRelease.InFlight(loads.Select(l => (l.Tenant, l.InFlight)), invocationLoads));
        await store.WriteTenantUsageAsync(_share.Uses, ct).ConfigureAwait(false);
        var demands = loads.Select(l => new FairShare.Demand(l.Tenant, SettingsOf(l.Tenant).Share, l.InFlight, l.Pending, SettingsOf(l.Tenant).Quotas.RunningTasks)).ToList();
        var spent = await MarkBudgetsAsync(demands, now, ct).ConfigureAwait(false);
        demands = [.. demands.Select(d => spent.Contains(d.Tenant) ? d with { Pending = 0 } : d)];
        var capacity = workers.Read();
        await MarkHarvestHoldsAsync(demands, capacity, now, ct).ConfigureAwait(false);
        var free = (2 * capacity.Offered) - loads.Sum(l => l.InFlight) - invocationLoads.Sum(l => l.InFlight);
        var released = new List<TaskKey>();
        var releasedBy = new Dictionary<TenantId, int>();
        var invokedBy = new Dictionary<TenantId, int>();
        if (free > 0 && (demands.Any(d => d.Pending > 0) || invocationLoads.Any(l => l.Pending > 0)))
        {
            if (tenants.Tenancy.FairShare)
            {
                foreach (var (tenant, n) in _share.Allocate(free, InvocationRelease.Combine(demands, invocationLoads, t => SettingsOf(t).Share)))
                {
                    var invoked = invocations is null ? 0 : await invocations.ReleaseAsync(tenant, n, now, ct).ConfigureAwait(false);
                    invokedBy[tenant] = invokedBy.GetValueOrDefault(tenant) + invoked;
                    if (n > invoked)
                    {
                        Add(tenant, await store.ReleaseTasksAsync(tenant, n - invoked, now, ct).ConfigureAwait(false));
                    }
                }
            }
            else
            {
                if (invocations is not null)
                {
                    await invocations.ReleaseAllAsync(invocationLoads, now, ct).ConfigureAwait(false);
                    foreach (var l in invocationLoads)
                    {
                        invokedBy[l.Tenant] = l.Pending;
                    }
                }

                // First come, first served, but a quota still binds: a tenant with one gets at most its room, apart.
                var bound = demands.Where(d => d.Quota is not null).ToList();
                foreach (var d in bound.Where(d => d.Pending > 0 && d.InFlight < d.Quota))
                {
                    Add(d.Tenant, await store.ReleaseTasksAsync(d.Tenant, Math.Min(free - released.Count, d.Quota!.Value - d.InFlight), now, ct).ConfigureAwait(false));
                }

                if (free > released.Count)
                {
                    released.AddRange(await store.ReleaseOldestAsync(free - released.Count, [.. bound.Select(d => d.Tenant).Union(spent)], now, ct).ConfigureAwait(false));
                }
            }
        }

        // Marked as the look leaves the tenants, after its release: a tenant whose task has just
        // ended and whose next one this look released is still at its quota, so its marks stay
        // (cleared before the release, they went for a moment at every task's end).
        await MarkQuotasAsync([.. demands.Select(d => d with { InFlight = d.InFlight + releasedBy.GetValueOrDefault(d.Tenant), Pending = d.Pending - releasedBy.GetValueOrDefault(d.Tenant) })], now, ct).ConfigureAwait(false);
        PublishHeld();

        // The async invocations this look left waiting say why, as a held task does.
        if (invocations is not null)
        {
            await invocations.HoldWaitingAsync(invocationLoads, invokedBy, capacity, ct).ConfigureAwait(false);
        }

        await EnqueueAsync(released, ct).ConfigureAwait(false);
        return released.Count;

        void Add(TenantId tenant, IReadOnlyList<TaskKey> keys)
        {
            released.AddRange(keys);
            releasedBy[tenant] = releasedBy.GetValueOrDefault(tenant) + keys.Count;
        }
    }

    /// <summary>
    /// Live workers that offer no slot at all while tasks wait: the pending tasks show held, with
    /// the first holding worker's reason and words (a quota's mark stays first). Once a slot is
    /// offered again, the marks go (a task released meanwhile keeps its mark until it is claimed).
    /// </summary>
    private async Task MarkHarvestHoldsAsync(IReadOnlyList<FairShare.Demand> demands, WorkerCapacity capacity, DateTimeOffset now, CancellationToken ct)
    {
        if (capacity is { Offered: 0, Holding: [var (worker, offer), ..] })
        {
            var hold = new TaskHold(offer.Hold!, offer.Detail ?? HoldReasons.Describe(offer.Hold!), worker, now);
            foreach (var d in demands.Where(d => d.Pending > 0 && !(d.Quota is { } quota && d.InFlight >= quota)))
            {
                if (_harvestHeld.TryGetValue(d.Tenant, out var before) && before != hold.Reason)
                {
                    await store.ClearPendingHoldAsync(d.Tenant, before, ct).ConfigureAwait(false);
                }

                await store.HoldPendingAsync(d.Tenant, hold, ct).ConfigureAwait(false);
                _harvestHeld[d.Tenant] = hold.Reason;
                _holding[(d.Tenant, hold.Reason)] = d.Pending;
            }

            return;
        }

        foreach (var (tenant, reason) in _harvestHeld)
        {
            await store.ClearPendingHoldAsync(tenant, reason, ct).ConfigureAwait(false);
        }

        _harvestHeld.Clear();
    }

    /// <summary>
    /// The tenants with work waiting whose budget is spent: none of their tasks is released, and
    /// their pending tasks show held by "budget" (a quota's mark gives way to it); positive again
    /// (a raised budget, a new month), the mark goes. Running tasks are not touched: they finish.
    /// </summary>
    private async Task<HashSet<TenantId>> MarkBudgetsAsync(IReadOnlyList<FairShare.Demand> demands, DateTimeOffset now, CancellationToken ct)
    {
        var spent = new HashSet<TenantId>();
        if (budgets is null)
        {
            return spent;
        }

        foreach (var d in demands.Where(d => d.Pending > 0))
        {
            if (budgets.Has(d.Tenant) && await budgets.BalanceAsync(d.Tenant, ct).ConfigureAwait(false) is { IsSpent: true } balance)
            {
                spent.Add(d.Tenant);
                if (_quotaHeld.Remove(d.Tenant))
                {
                    await store.ClearPendingHoldAsync(d.Tenant, HoldReasons.Quota, ct).ConfigureAwait(false);
                }

                await store.HoldPendingAsync(d.Tenant, new TaskHold(HoldReasons.Budget, balance.Detail, Dispatcher, now), ct).ConfigureAwait(false);
                _budgetHeld.Add(d.Tenant);
                _holding[(d.Tenant, HoldReasons.Budget)] = d.Pending;
            }
            else if (_budgetHeld.Remove(d.Tenant) || _budgetsUnknown)
            {
                await store.ClearPendingHoldAsync(d.Tenant, HoldReasons.Budget, ct).ConfigureAwait(false);
            }
        }

        _budgetsUnknown = false;
        return spent;
    }

    /// <summary>A tenant at its quota with work waiting: its pending tasks show held by "quota"; below it again, the mark goes.</summary>
    private async Task MarkQuotasAsync(IReadOnlyList<FairShare.Demand> demands, DateTimeOffset now, CancellationToken ct)
    {
        foreach (var d in demands)
        {
            if (d.Quota is { } quota && d.InFlight >= quota && d.Pending > 0)
            {
                var hold = new TaskHold(HoldReasons.Quota, $"{d.InFlight} of the tenant's {quota} running tasks (Quotas:RunningTasks) are taken", Dispatcher, now);
                await store.HoldPendingAsync(d.Tenant, hold, ct).ConfigureAwait(false);
                _quotaHeld.Add(d.Tenant);
                _holding[(d.Tenant, HoldReasons.Quota)] = d.Pending;
            }
            else if (_quotaHeld.Remove(d.Tenant))
            {
                await store.ClearPendingHoldAsync(d.Tenant, HoldReasons.Quota, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// What this look left held, for <see cref="Held"/>: every configured tenant (and every tenant
    /// held) with each reason, 0 where none, so that a series falls to 0 rather than going away.
    /// </summary>
    private void PublishHeld()
    {
        var held = tenants.All.Select(t => t.Id).Union(_holding.Keys.Select(k => k.Tenant))
            .SelectMany(t => HoldReasons.All.Select(r => (t, r, _holding.GetValueOrDefault((t, r)))))
            .Concat(_holding.Where(h => !HoldReasons.All.Contains(h.Key.Reason)).Select(h => (h.Key.Tenant, h.Key.Reason, h.Value)));
        Volatile.Write(ref _held, [.. held]);
    }

    private async Task EnqueueAsync(IReadOnlyList<TaskKey> keys, CancellationToken ct)
    {
        foreach (var run in keys.GroupBy(k => k.RunId))
        {
            try
            {
                await hangfire.EnqueueTasksAsync(run.Key, [.. run.Select(k => k.Index)], ct).ConfigureAwait(false);
            }
            catch (Exception e) when (Outage.Is(e) && !ct.IsCancellationRequested)
            {
                LogEnqueueFailed(log, run.Key, e.Message);
                _unenqueued.AddRange(run);
            }
        }
    }

    private TenantSettings SettingsOf(TenantId tenant) =>
        tenants.Exists(tenant) ? tenants.Settings(tenant) : tenants.Settings(TenantId.Default);

    [LoggerMessage(Level = LogLevel.Information, Message = "dispatcher: this process releases queued tasks to the workers")]
    private static partial void LogLeading(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "dispatcher: the run store is out of reach, trying again: {Error}")]
    private static partial void LogOutage(ILogger logger, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "dispatcher: released tasks of run {RunId} could not be enqueued yet, trying again: {Error}")]
    private static partial void LogEnqueueFailed(ILogger logger, string runId, string error);
}
