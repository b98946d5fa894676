using System.Runtime.CompilerServices;
using Pipelines.Tenancy;

namespace Pipelines.RunStore;

/// <summary>
/// One tenant's view of a run store (<see cref="IRunStore.For"/>), the same for both homes: a
/// run of another tenant is answered exactly as a missing one (null, false, an empty page or
/// list, zero counts, <see cref="UnknownRunException"/>), so a front end's not-found path cannot
/// tell them apart; runs it creates are stamped with the tenant; its listings hold only the tenant's.
/// </summary>
/// <remarks>
/// A run's tenant never changes and run ids are global and never reused, so checking the owner
/// of a run before a verb of the store has no race: the check and the verb see the same owner.
/// The engine's own singletons are not views (they reach every tenant): the hot path of workers
/// (claim, renew, commit) pays nothing; a front end's verb on one run costs one primary-key read more.
/// </remarks>
internal sealed class TenantRunStore(IRunStore inner, TenantId tenant) : IRunStore
{
    public TenantId Tenant => tenant;

    /// <summary>A view narrows only: to its own tenant (or all, which it already is) it is itself.</summary>
    public IRunStore For(TenantScope scope)
    {
        _ = scope.Narrow(tenant);
        return this;
    }

    public Task CreateRunAsync(RunRecord run, IReadOnlyList<TaskRecord> tasks, CancellationToken cancellationToken) =>
        inner.CreateRunAsync(run with { Tenant = tenant }, tasks, cancellationToken);

    public Task<int> CreateRunAsync(RunRecord run, IAsyncEnumerable<TaskRecord> tasks, CancellationToken cancellationToken) =>
        inner.CreateRunAsync(run with { Tenant = tenant }, tasks, cancellationToken);

    public async Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken) =>
        await inner.GetRunAsync(runId, cancellationToken).ConfigureAwait(false) is { } run && run.Tenant == tenant ? run : null;

    public Task<Page<RunRecord>> QueryRunsAsync(RunQuery query, CancellationToken cancellationToken) =>
        inner.QueryRunsAsync(query with { Tenant = tenant }, cancellationToken);

    public async Task<Page<TaskRecord>> QueryTasksAsync(string runId, TaskQuery query, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) ? await inner.QueryTasksAsync(runId, query, cancellationToken).ConfigureAwait(false) : new Page<TaskRecord>([], 0);

    public async Task<TaskRecord?> GetTaskAsync(string runId, int index, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) ? await inner.GetTaskAsync(runId, index, cancellationToken).ConfigureAwait(false) : null;

    public async Task<IReadOnlyList<TaskRecord>> GetTasksAsync(string runId, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) ? await inner.GetTasksAsync(runId, cancellationToken).ConfigureAwait(false) : [];

    public async Task<TaskCounts> CountTasksAsync(string runId, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) ? await inner.CountTasksAsync(runId, cancellationToken).ConfigureAwait(false) : new TaskCounts(0, 0, 0, 0, 0, 0);

    public async Task<int?> ClaimTaskAsync(string runId, int index, string worker, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) ? await inner.ClaimTaskAsync(runId, index, worker, now, leaseUntil, cancellationToken).ConfigureAwait(false) : null;

    public async Task<bool> HoldTaskAsync(string runId, int index, TaskHold hold, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) && await inner.HoldTaskAsync(runId, index, hold, cancellationToken).ConfigureAwait(false);

    public async Task<bool> RenewLeaseAsync(string runId, int index, string worker, DateTimeOffset startedAt, DateTimeOffset leaseUntil, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) && await inner.RenewLeaseAsync(runId, index, worker, startedAt, leaseUntil, cancellationToken).ConfigureAwait(false);

    public async Task<(bool Committed, int Remaining)> CommitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, CancellationToken cancellationToken)
    {
        await RequireAsync(runId, cancellationToken).ConfigureAwait(false);
        return await inner.CommitTaskAsync(runId, index, outcome, rows, cancellationToken).ConfigureAwait(false);
    }

    public async Task<(bool Committed, IReadOnlyList<int> Children, int Remaining)> SplitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, IReadOnlyList<TaskRecord> children, CancellationToken cancellationToken)
    {
        await RequireAsync(runId, cancellationToken).ConfigureAwait(false);
        return await inner.SplitTaskAsync(runId, index, outcome, rows, children, cancellationToken).ConfigureAwait(false);
    }

    public async Task RequestStopAsync(string runId, string reason, CancellationToken cancellationToken)
    {
        await RequireAsync(runId, cancellationToken).ConfigureAwait(false);
        await inner.RequestStopAsync(runId, reason, cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> TryBeginGatherAsync(string runId, string gatherJobId, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) && await inner.TryBeginGatherAsync(runId, gatherJobId, cancellationToken).ConfigureAwait(false);

    public async Task FinishRunAsync(string runId, RunState state, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await RequireAsync(runId, cancellationToken).ConfigureAwait(false);
        await inner.FinishRunAsync(runId, state, error, now, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<ProvenanceRow>> GetProvenanceAsync(string runId, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) ? await inner.GetProvenanceAsync(runId, cancellationToken).ConfigureAwait(false) : [];

    public async Task<IReadOnlyList<ProvenanceRow>> GetProvenanceAsync(string runId, IReadOnlyCollection<int> taskIndexes, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) ? await inner.GetProvenanceAsync(runId, taskIndexes, cancellationToken).ConfigureAwait(false) : [];

    // The dispatcher's verbs are the engine's; a view answers them for its own tenant only.

    public async Task<IReadOnlyList<TenantLoad>> TenantLoadsAsync(CancellationToken cancellationToken) =>
        [.. (await inner.TenantLoadsAsync(cancellationToken).ConfigureAwait(false)).Where(l => l.Tenant == tenant)];

    public async Task<IReadOnlyList<TaskKey>> ReleaseTasksAsync(TenantId of, int count, DateTimeOffset now, CancellationToken cancellationToken) =>
        of == tenant ? await inner.ReleaseTasksAsync(of, count, now, cancellationToken).ConfigureAwait(false) : [];

    /// <summary>A view's first come, first served is its own tenant's release.</summary>
    public async Task<IReadOnlyList<TaskKey>> ReleaseOldestAsync(int count, IReadOnlyCollection<TenantId> except, DateTimeOffset now, CancellationToken cancellationToken) =>
        except.Contains(tenant) ? [] : await inner.ReleaseTasksAsync(tenant, count, now, cancellationToken).ConfigureAwait(false);

    public async Task<IReadOnlyList<TaskKey>> InFlightAsync(IReadOnlyList<TaskKey> keys, CancellationToken cancellationToken)
    {
        var mine = new List<TaskKey>();
        foreach (var run in keys.GroupBy(k => k.RunId))
        {
            if (await OwnsAsync(run.Key, cancellationToken).ConfigureAwait(false))
            {
                mine.AddRange(run);
            }
        }

        return mine.Count == 0 ? [] : await inner.InFlightAsync(mine, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<string>> StoppingWithPendingAsync(CancellationToken cancellationToken)
    {
        var mine = new List<string>();
        foreach (var id in await inner.StoppingWithPendingAsync(cancellationToken).ConfigureAwait(false))
        {
            if (await OwnsAsync(id, cancellationToken).ConfigureAwait(false))
            {
                mine.Add(id);
            }
        }

        return mine;
    }

    public async Task<IReadOnlyList<int>> MarkPendingAsync(string runId, IReadOnlyList<int> taskIndexes, CancellationToken cancellationToken) =>
        await OwnsAsync(runId, cancellationToken).ConfigureAwait(false) ? await inner.MarkPendingAsync(runId, taskIndexes, cancellationToken).ConfigureAwait(false) : [];

    /// <summary>Stuck releases are the whole store's to heal (the engine's dispatcher): a view has none.</summary>
    public Task<IReadOnlyList<TaskKey>> ReleaseStuckAsync(DateTimeOffset releasedBefore, DateTimeOffset now, int count, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<TaskKey>>([]);

    public async Task<int> HoldPendingAsync(TenantId of, TaskHold hold, CancellationToken cancellationToken) =>
        of == tenant ? await inner.HoldPendingAsync(of, hold, cancellationToken).ConfigureAwait(false) : 0;

    public async Task<int> ClearPendingHoldAsync(TenantId of, string reason, CancellationToken cancellationToken) =>
        of == tenant ? await inner.ClearPendingHoldAsync(of, reason, cancellationToken).ConfigureAwait(false) : 0;

    public async Task<(int Ended, int Remaining)> CancelPendingAsync(string runId, TaskOutcome outcome, CancellationToken cancellationToken)
    {
        await RequireAsync(runId, cancellationToken).ConfigureAwait(false);
        return await inner.CancelPendingAsync(runId, outcome, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyDictionary<TenantId, TenantUse>> ReadTenantUsageAsync(CancellationToken cancellationToken) =>
        (await inner.ReadTenantUsageAsync(cancellationToken).ConfigureAwait(false)).Where(u => u.Key == tenant).ToDictionary();

    public Task WriteTenantUsageAsync(IReadOnlyDictionary<TenantId, TenantUse> uses, CancellationToken cancellationToken) =>
        inner.WriteTenantUsageAsync(uses.Where(u => u.Key == tenant).ToDictionary(), cancellationToken);

    public async IAsyncEnumerable<ProvenanceRow> ReadProvenanceAsync(string runId, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!await OwnsAsync(runId, cancellationToken).ConfigureAwait(false))
        {
            yield break;
        }

        await foreach (var row in inner.ReadProvenanceAsync(runId, cancellationToken).ConfigureAwait(false))
        {
            yield return row;
        }
    }

    private async Task<bool> OwnsAsync(string runId, CancellationToken ct) =>
        await inner.GetRunAsync(runId, ct).ConfigureAwait(false) is { } run && run.Tenant == tenant;

    /// <summary>For the verbs that throw for a missing run: the same exception for a foreign one.</summary>
    private async Task RequireAsync(string runId, CancellationToken ct)
    {
        if (!await OwnsAsync(runId, ct).ConfigureAwait(false))
        {
            throw new UnknownRunException(runId);
        }
    }
}
