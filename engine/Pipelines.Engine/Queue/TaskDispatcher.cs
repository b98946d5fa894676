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
    private readonly List<(string RunId, int[] Tasks)> _unenqueued = [];

    // The jobs of several tasks this dispatcher released, until their last task ends: each counts
    // as one job in flight, however many of its tasks are. A task belongs to the job that released
    // it last (one handed back and released again is in its new job only). Tasks it did not release
    // in such a job (another leader's, a vacated task's) count a job each: never fewer than there are.
    private readonly Dictionary<TaskKey, long> _jobOf = [];
    private readonly Dictionary<long, TenantId> _jobTenant = [];
    private long _lastJob;
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
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // Whatever else ends a lead, the dispatcher goes on: without it no queued task is
                // released and every run waits (it ended the whole worker process once, as a
                // BackgroundService's exception stops the host).
                LogLeadFailed(log, e);
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
            foreach (var k in stuck)
            {
                _jobOf.Remove(k);
            }

            await EnqueueAsync([.. stuck.Select(k => (k.RunId, new[] { k.Index }))], ct).ConfigureAwait(false);
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

    /// <summary>
    /// One look: stopping runs' pending tasks ended, quotas marked, free slots filled. Slots are
    /// counted in jobs (a job of several tasks holds one slot, or one place in the queue), the
    /// free ones filled with jobs of up to <see cref="JobSizes.Of"/> tasks each; fair share and
    /// quotas count tasks, so a tenant's jobs carry no more than its grant. Returns how many tasks it released.
    /// </summary>
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
        var jobs = await JobsInFlightAsync(loads, ct).ConfigureAwait(false);

        // A tenant's use is the slots it held: its jobs (one task each but those released together).
        _share.Account(InvocationRelease.InFlight(loads.Select(l => (l.Tenant, jobs.GetValueOrDefault(l.Tenant, l.InFlight))), invocationLoads));
        await store.WriteTenantUsageAsync(_share.Uses, ct).ConfigureAwait(false);
        var demands = loads.Select(l => new FairShare.Demand(l.Tenant, SettingsOf(l.Tenant).Share, l.InFlight, l.Pending, SettingsOf(l.Tenant).Quotas.RunningTasks)).ToList();
        var spent = await MarkBudgetsAsync(demands, now, ct).ConfigureAwait(false);
        demands = [.. demands.Select(d => spent.Contains(d.Tenant) ? d with { Pending = 0 } : d)];
        var capacity = workers.Read();
        await MarkHarvestHoldsAsync(demands, capacity, now, ct).ConfigureAwait(false);
        var freeJobs = (2 * capacity.Offered) - loads.Sum(l => jobs.GetValueOrDefault(l.Tenant, l.InFlight)) - invocationLoads.Sum(l => l.InFlight);
        var size = JobSizes.Of(demands.Sum(d => d.Pending), capacity.Offered, tenants.Tenancy.TasksPerJob, invocationLoads.Count > 0 || demands.Count(d => d.Pending > 0) > 1);
        var free = Math.Max(0, freeJobs) * size;
        var released = new List<(TenantId? Tenant, TaskKey Key)>();
        var releasedBy = new Dictionary<TenantId, int>();
        var invokedBy = new Dictionary<TenantId, int>();
        if (free > 0 && (demands.Any(d => d.Pending > 0) || invocationLoads.Any(l => l.Pending > 0)))
        {
            if (tenants.Tenancy.FairShare)
            {
                foreach (var (tenant, n) in _share.Allocate(free, InvocationRelease.Combine(demands, invocationLoads, t => SettingsOf(t).Share)))
                {
                    // Jobs of several tasks are made only when no invocation waited at this look: one that came since waits for the next.
                    var invoked = invocations is null || size > 1 ? 0 : await invocations.ReleaseAsync(tenant, n, now, ct).ConfigureAwait(false);
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
                    released.AddRange((await store.ReleaseOldestAsync(free - released.Count, [.. bound.Select(d => d.Tenant).Union(spent)], now, ct).ConfigureAwait(false)).Select(k => ((TenantId?)null, k)));
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

        await EnqueueAsync(await JobsOfAsync(released, size, ct).ConfigureAwait(false), ct).ConfigureAwait(false);
        return released.Count;

        void Add(TenantId tenant, IReadOnlyList<TaskKey> keys)
        {
            released.AddRange(keys.Select(k => ((TenantId?)tenant, k)));
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

    /// <summary>
    /// Each tenant's released tasks as jobs, run by run, of at most <paramref name="size"/> tasks
    /// (<see cref="JobSizes.Split"/>); a job of several is kept until its last task ends.
    /// </summary>
    private async Task<IReadOnlyList<(string RunId, int[] Tasks)>> JobsOfAsync(IReadOnlyList<(TenantId? Tenant, TaskKey Key)> released, int size, CancellationToken ct)
    {
        var result = new List<(string, int[])>();
        foreach (var run in released.GroupBy(r => r.Key.RunId))
        {
            foreach (var job in JobSizes.Split([.. run.Select(r => r.Key.Index)], size))
            {
                result.Add((run.Key, job));
                if (job.Length == 1)
                {
                    _jobOf.Remove(new TaskKey(run.Key, job[0]));
                    continue;
                }

                // First come, first served releases across tenants: the run says whose it is.
                var number = ++_lastJob;
                _jobTenant[number] = run.First().Tenant ?? (await store.GetRunAsync(run.Key, ct).ConfigureAwait(false))?.Tenant ?? TenantId.Default;
                foreach (var i in job)
                {
                    _jobOf[new TaskKey(run.Key, i)] = number;
                }
            }
        }

        return result;
    }

    /// <summary>
    /// Each tenant's jobs in flight: its tasks in flight, less the tasks beyond the first still in
    /// flight of each job of several; the tasks that ended or went back are forgotten.
    /// </summary>
    private async Task<Dictionary<TenantId, int>> JobsInFlightAsync(IReadOnlyList<TenantLoad> loads, CancellationToken ct)
    {
        var jobs = loads.ToDictionary(l => l.Tenant, l => l.InFlight);
        if (_jobOf.Count == 0)
        {
            return jobs;
        }

        var alive = (await store.InFlightAsync([.. _jobOf.Keys], ct).ConfigureAwait(false)).ToHashSet();
        foreach (var gone in _jobOf.Keys.Where(k => !alive.Contains(k)).ToList())
        {
            _jobOf.Remove(gone);
        }

        var byJob = _jobOf.GroupBy(j => j.Value).ToDictionary(g => g.Key, g => g.Count());
        foreach (var number in _jobTenant.Keys.Where(n => !byJob.ContainsKey(n)).ToList())
        {
            _jobTenant.Remove(number);
        }

        foreach (var (number, n) in byJob)
        {
            var tenant = _jobTenant[number];
            if (jobs.TryGetValue(tenant, out var all))
            {
                jobs[tenant] = Math.Max(0, all - (n - 1));
            }
        }

        return jobs;
    }

    private async Task EnqueueAsync(IReadOnlyList<(string RunId, int[] Tasks)> jobs, CancellationToken ct)
    {
        foreach (var run in jobs.GroupBy(j => j.RunId))
        {
            try
            {
                await hangfire.EnqueueJobsAsync(run.Key, [.. run.Select(j => j.Tasks)], ct).ConfigureAwait(false);
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

    [LoggerMessage(Level = LogLevel.Error, Message = "dispatcher: its lead ended on an error, leading again shortly")]
    private static partial void LogLeadFailed(ILogger logger, Exception error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "dispatcher: released tasks of run {RunId} could not be enqueued yet, trying again: {Error}")]
    private static partial void LogEnqueueFailed(ILogger logger, string runId, string error);
}
