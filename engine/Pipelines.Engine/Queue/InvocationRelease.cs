using Pipelines.Tenancy;

namespace Pipelines.Queue;

/// <summary>One tenant's async invocations for the dispatcher: waiting to be released, and released and not ended (neither held by a quota).</summary>
internal readonly record struct InvocationLoad(TenantId Tenant, int Pending, int InFlight);

/// <summary>An async invocation waiting for the dispatcher, with the caller's trace its job carries.</summary>
internal sealed record PendingInvocation(string Id, string? TraceParent);

/// <summary>
/// Where the dispatcher finds async invocations waiting for a worker slot (the function store's
/// queued invocations not yet released: docs/tenants.md, "Fair share"). The functions implement it;
/// the queue names this, never the function store (docs/architecture.md, "Layering").
/// </summary>
internal interface IInvocationBacklog
{
    /// <summary>Every tenant with async invocations waiting or in flight.</summary>
    Task<IReadOnlyList<InvocationLoad>> LoadsAsync(CancellationToken cancellationToken);

    /// <summary>A tenant's oldest invocations waiting to be released, at most <paramref name="count"/>, oldest first.</summary>
    Task<IReadOnlyList<PendingInvocation>> OldestPendingAsync(TenantId tenant, int count, CancellationToken cancellationToken);

    /// <summary>Marks invocations released (their jobs are queued): they wait no more for the dispatcher, and their wait's held goes.</summary>
    Task MarkReleasedAsync(IReadOnlyList<string> ids, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Says why a tenant's invocations still waiting to be released wait: <paramref name="held"/> on
    /// each of them (written only where it differs, so a look that finds the same reason writes nothing).
    /// </summary>
    Task HoldPendingAsync(TenantId tenant, string held, CancellationToken cancellationToken);
}

/// <summary>
/// The dispatcher's part for async invocations (docs/decisions.md, "Async invocations through
/// the dispatcher"): they share the worker slots with batch tasks, by the one fair share
/// (<see cref="FairShare"/>), a tenant's invocations counted beside its tasks in its demand and in
/// its use; a tenant's grant serves its waiting invocations first (someone may be waiting on
/// them), its tasks with the rest. Released means its job is queued in Hangfire, then marked:
/// a dispatcher that dies between the two queues the job again (a job runs an invocation at most
/// to one end: <c>FunctionService.RunQueuedAsync</c>), never loses it.
/// </summary>
internal sealed class InvocationRelease(IInvocationBacklog backlog, IInvocationQueue queue)
{
    public Task<IReadOnlyList<InvocationLoad>> LoadsAsync(CancellationToken cancellationToken) => backlog.LoadsAsync(cancellationToken);

    /// <summary>
    /// Each tenant's demand with its invocations in: their in-flight units beside its tasks', their
    /// waiting ones beside its pending tasks, and its running-tasks quota widened by its invocations
    /// (the quota binds tasks only: what the grant gives beyond the invocations stays within it).
    /// </summary>
    public static IReadOnlyList<FairShare.Demand> Combine(IReadOnlyList<FairShare.Demand> tasks, IReadOnlyList<InvocationLoad> invocations, Func<TenantId, double> share)
    {
        var byTenant = invocations.ToDictionary(l => l.Tenant);
        var combined = tasks.Select(d => byTenant.Remove(d.Tenant, out var l)
            ? d with { InFlight = d.InFlight + l.InFlight, Pending = d.Pending + l.Pending, Quota = d.Quota + l.InFlight + l.Pending }
            : d).ToList();
        combined.AddRange(byTenant.Values.Select(l => new FairShare.Demand(l.Tenant, share(l.Tenant), l.InFlight, l.Pending)));
        return combined;
    }

    /// <summary>The units in flight per tenant, tasks and invocations: what its use is charged for.</summary>
    public static IReadOnlyDictionary<TenantId, int> InFlight(IEnumerable<(TenantId Tenant, int InFlight)> tasks, IReadOnlyList<InvocationLoad> invocations)
    {
        var all = new Dictionary<TenantId, int>();
        foreach (var (tenant, n) in tasks.Concat(invocations.Select(l => (l.Tenant, l.InFlight))))
        {
            all[tenant] = all.GetValueOrDefault(tenant) + n;
        }

        return all;
    }

    /// <summary>Releases up to <paramref name="count"/> of the tenant's waiting invocations, oldest first; returns how many.</summary>
    public async Task<int> ReleaseAsync(TenantId tenant, int count, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (count <= 0)
        {
            return 0;
        }

        var pending = await backlog.OldestPendingAsync(tenant, count, cancellationToken).ConfigureAwait(false);
        var queued = new List<string>(pending.Count);
        try
        {
            foreach (var p in pending)
            {
                queue.Enqueue(p.Id, p.TraceParent);
                queued.Add(p.Id);
            }
        }
        finally
        {
            // Those whose job is queued are marked, even when a later enqueue failed (an outage: the rest wait for the next look).
            if (queued.Count > 0)
            {
                await backlog.MarkReleasedAsync(queued, now, cancellationToken).ConfigureAwait(false);
            }
        }

        return queued.Count;
    }

    /// <summary>
    /// Why an invocation the dispatcher's look left waiting waits, in words, the one home of them
    /// (docs/tenants.md, "Fair share"): no live worker offers a slot (the first holding worker's
    /// reason, as a held task shows it), or every slot offered is taken and the fair share gave
    /// this look's free ones to other work.
    /// </summary>
    public static string Waiting(WorkerCapacity capacity) => capacity switch
    {
        { Offered: 0, Holding: [var (worker, offer), ..] } =>
            $"waiting for a worker slot: no live worker offers one ({offer.Detail ?? offer.Hold}, by {worker}); released when one does",
        { Offered: 0 } => "waiting for a worker slot: no live worker (a process with the worker role); released when one starts",
        _ => $"waiting for a worker slot: the {capacity.Offered} slots the workers offer are taken by tasks and invocations in flight; released by fair share as they free up",
    };

    /// <summary>
    /// Marks the waiting invocations of each tenant that has some left after this look's release
    /// (<paramref name="released"/>: how many of its invocations the look released) with
    /// <see cref="Waiting"/>'s words.
    /// </summary>
    public async Task HoldWaitingAsync(IReadOnlyList<InvocationLoad> loads, IReadOnlyDictionary<TenantId, int> released, WorkerCapacity capacity, CancellationToken cancellationToken)
    {
        var held = Waiting(capacity);
        foreach (var l in loads.Where(l => l.Pending > released.GetValueOrDefault(l.Tenant)))
        {
            await backlog.HoldPendingAsync(l.Tenant, held, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Without fair share (Tenancy:FairShare false): every waiting invocation is released at once, as before the dispatcher.</summary>
    public async Task ReleaseAllAsync(IReadOnlyList<InvocationLoad> loads, DateTimeOffset now, CancellationToken cancellationToken)
    {
        foreach (var l in loads.Where(l => l.Pending > 0))
        {
            await ReleaseAsync(l.Tenant, l.Pending, now, cancellationToken).ConfigureAwait(false);
        }
    }
}
