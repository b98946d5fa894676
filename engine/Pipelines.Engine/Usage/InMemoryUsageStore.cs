using System.Runtime.CompilerServices;

namespace Pipelines.Usage;

/// <summary>
/// The ledger of the embedded mode, in memory, one instance shared with the in-memory run and
/// function stores (so that their ends write it under their own rule, as PostgreSQL's do in their
/// transactions). A record is about 300 bytes: a run of 100,000 tasks holds about 30 MB of it.
/// </summary>
internal sealed class InMemoryUsageStore : IUsageStore
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, UsageRecord> _records = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<UsageRecord>> _byRun = new(StringComparer.Ordinal);

    public Task<bool> RecordAsync(UsageRecord record, CancellationToken cancellationToken) => Task.FromResult(Add(record));

    /// <summary>Adds the record unless its id exists: the ON CONFLICT (id) DO NOTHING of PostgresUsageStore.</summary>
    public bool Add(UsageRecord record)
    {
        lock (_lock)
        {
            if (!_records.TryAdd(record.Id, record))
            {
                return false;
            }

            if (record.RunId is { } run)
            {
                if (!_byRun.TryGetValue(run, out var list))
                {
                    _byRun[run] = list = [];
                }

                list.Add(record);
            }

            return true;
        }
    }

    /// <summary>
    /// How many deliveries of a task have a record, and whether one of them started at
    /// <paramref name="startedAt"/> (the claim of a delivery that ended without a commit has none).
    /// </summary>
    public (int Deliveries, bool Recorded) DeliveriesOf(string runId, int index, DateTimeOffset? startedAt)
    {
        lock (_lock)
        {
            var mine = _byRun.TryGetValue(runId, out var list) ? list.Where(r => r.TaskIndex == index).ToList() : [];
            return (mine.Count, startedAt is { } s && mine.Any(r => r.StartedAt == s));
        }
    }

    public Task<IReadOnlyList<UsageRecord>> ForRunAsync(string runId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            IReadOnlyList<UsageRecord> list = _byRun.TryGetValue(runId, out var rs) ? [.. rs.OrderBy(r => r.TaskIndex).ThenBy(r => r.Delivery)] : [];
            return Task.FromResult(list);
        }
    }

    public Task<IReadOnlyList<UsageRow>> AggregateAsync(UsageQuery query, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            IReadOnlyList<UsageRow> rows = [.. _records.Values.Where(query.Matches)
                .GroupBy(r => (Bucket: query.BucketOf(r.EndedAt), r.Tenant, r.Kind, r.Outcome, r.Harvested))
                .Select(g => new UsageRow(g.Key.Bucket, g.Key.Tenant, g.Key.Kind, g.Key.Outcome, g.Key.Harvested, g.Aggregate(UsageFigures.Zero, (sum, r) => sum.Add(UsageFigures.Of(r)))))
                .OrderBy(r => r.Bucket).ThenBy(r => r.Tenant.Value, StringComparer.Ordinal).ThenBy(r => r.Kind, StringComparer.Ordinal)
                .ThenBy(r => r.Outcome, StringComparer.Ordinal).ThenBy(r => r.Harvested)];
            return Task.FromResult(rows);
        }
    }

    public async IAsyncEnumerable<UsageRecord> RecordsAsync(UsageQuery query, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        List<UsageRecord> page;
        lock (_lock)
        {
            page = [.. _records.Values.Where(query.Matches).OrderBy(r => r.EndedAt).ThenBy(r => r.Id, StringComparer.Ordinal)];
        }

        foreach (var r in page)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return r;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }
}
