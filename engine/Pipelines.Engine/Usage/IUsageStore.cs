using Pipelines.Tenancy;

namespace Pipelines.Usage;

/// <summary>
/// The usage ledger: one <see cref="UsageRecord"/> per task delivery and per invocation
/// (docs/tenants.md). Records are written where the work's end is written (the run store's commit,
/// the function store's finish) or through <see cref="RecordAsync"/>; they are never changed.
/// </summary>
/// <remarks>
/// Both homes keep one behaviour, checked by tests/Pipelines.Tests/Usage/UsageStoreContract.cs: one
/// record per id however often it is written (the first write wins); aggregates sum figures only
/// (a price is C#'s, PriceSheet); a tenant's view reaches only that tenant's records.
/// </remarks>
public interface IUsageStore
{
    /// <summary>
    /// The ledger as <paramref name="scope"/> sees it: itself for every tenant; for one tenant a view
    /// whose reads hold only its records and whose writes are stamped with it.
    /// </summary>
    IUsageStore For(TenantScope scope) => scope.Tenant is { } tenant ? new TenantUsageStore(this, tenant) : this;

    /// <summary>Writes the record unless one with its id exists (then nothing changes): true when this call wrote it.</summary>
    Task<bool> RecordAsync(UsageRecord record, CancellationToken cancellationToken);

    /// <summary>The records of a run's task deliveries, by task index then delivery; empty for a run with none.</summary>
    Task<IReadOnlyList<UsageRecord>> ForRunAsync(string runId, CancellationToken cancellationToken);

    /// <summary>The records the query covers, summed by bucket, tenant, kind, outcome and class, in that order.</summary>
    Task<IReadOnlyList<UsageRow>> AggregateAsync(UsageQuery query, CancellationToken cancellationToken);

    /// <summary>The records the query covers, by end then id, streamed (an export's memory does not grow with them).</summary>
    IAsyncEnumerable<UsageRecord> RecordsAsync(UsageQuery query, CancellationToken cancellationToken);
}
