using System.Runtime.CompilerServices;
using Pipelines.Tenancy;

namespace Pipelines.Usage;

/// <summary>
/// One tenant's view of the ledger (<see cref="IUsageStore.For"/>), the same for both homes: its
/// reads cover only the tenant's records (another tenant's run has no usage, as a missing one),
/// its writes are the tenant's.
/// </summary>
internal sealed class TenantUsageStore(IUsageStore inner, TenantId tenant) : IUsageStore
{
    /// <summary>A view narrows only: to its own tenant (or all, which it already is) it is itself.</summary>
    public IUsageStore For(TenantScope scope)
    {
        _ = scope.Narrow(tenant);
        return this;
    }

    public Task<bool> RecordAsync(UsageRecord record, CancellationToken cancellationToken) =>
        inner.RecordAsync(record with { Tenant = tenant }, cancellationToken);

    public async Task<IReadOnlyList<UsageRecord>> ForRunAsync(string runId, CancellationToken cancellationToken) =>
        [.. (await inner.ForRunAsync(runId, cancellationToken).ConfigureAwait(false)).Where(r => r.Tenant == tenant)];

    public Task<IReadOnlyList<UsageRow>> AggregateAsync(UsageQuery query, CancellationToken cancellationToken) =>
        inner.AggregateAsync(query with { Tenant = tenant }, cancellationToken);

    public async IAsyncEnumerable<UsageRecord> RecordsAsync(UsageQuery query, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var r in inner.RecordsAsync(query with { Tenant = tenant }, cancellationToken).ConfigureAwait(false))
        {
            yield return r;
        }
    }
}
