using System.Runtime.CompilerServices;
using System.Text.Json;
using Pipelines.Storage;

namespace Pipelines.Usage;

/// <summary>
/// The ledger of the embedded mode, one instance shared with the in-memory run and function
/// stores (so that their ends write it under their own rule, as PostgreSQL's do in their
/// transactions).
/// </summary>
/// <remarks>
/// A record (about 450 bytes in memory) is not held: each is appended as JSON to one spill file,
/// as the run store's provenance rows are, and memory keeps where it is (16 bytes), with what the
/// claim of a task's next delivery asks of it (its key and start: about 50 bytes a delivery, in
/// a map per run). So a one-shot run of 100,000 tasks does not hold its 100,000 records; every
/// reader (the run's cost in run.json and the report, the usage API's aggregates and exports,
/// a budget's balance) reads them back from the file, the one home of the figures. The file is
/// unlinked as soon as it is opened: it lives as long as the process (or <see cref="Dispose"/>),
/// and a killed engine leaves none.
/// </remarks>
internal sealed class InMemoryUsageStore(string? spillDirectory = null) : IUsageStore, IDisposable
{
    private readonly Lock _lock = new();

    // Every record in the order written; task deliveries also by run and key, the rest by id.
    private readonly List<RecordAt> _all = [];
    private readonly Dictionary<string, RunLedger> _byRun = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RecordAt> _byId = new(StringComparer.Ordinal);
    private readonly SpillFile _spill = new(spillDirectory, "usage");

    /// <summary>Where one record is in the spill file.</summary>
    private readonly record struct RecordAt(long Offset, int Length);

    /// <summary>Where a task delivery's record is, and when the delivery claimed the task (UTC ticks).</summary>
    private readonly record struct DeliveryAt(RecordAt At, long StartedAt);

    /// <summary>A run's records: its task deliveries by (index, delivery), any other record of it apart.</summary>
    private sealed class RunLedger
    {
        public Dictionary<(int Index, int Delivery), DeliveryAt> Deliveries { get; } = [];

        public List<RecordAt> Others { get; } = [];
    }

    public Task<bool> RecordAsync(UsageRecord record, CancellationToken cancellationToken) => Task.FromResult(Add(record));

    /// <summary>
    /// Adds the record unless its id exists: the ON CONFLICT (id) DO NOTHING of PostgresUsageStore.
    /// A write that fails (a full disk, a disposed store) throws and adds nothing.
    /// </summary>
    public bool Add(UsageRecord record)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(record, UsageJson.Default.UsageRecord);

        // A task delivery's id is its key (UsageRecord.TaskId): kept as numbers, not as the string.
        (int Index, int Delivery)? key = record is { RunId: { } runId, TaskIndex: { } index, Delivery: { } delivery }
            && record.Id == UsageRecord.TaskId(runId, index, delivery) ? (index, delivery) : null;
        lock (_lock)
        {
            RunLedger? run = null;
            if (record.RunId is { } id && !_byRun.TryGetValue(id, out run))
            {
                run = new RunLedger();
            }

            if (key is { } k ? run!.Deliveries.ContainsKey(k) : _byId.ContainsKey(record.Id))
            {
                return false;
            }

            var at = new RecordAt(_spill.Append(json), json.Length);
            _all.Add(at);
            if (key is { } taskKey)
            {
                run!.Deliveries[taskKey] = new DeliveryAt(at, record.StartedAt.UtcTicks);
            }
            else
            {
                _byId[record.Id] = at;
                run?.Others.Add(at);
            }

            if (run is not null)
            {
                _byRun.TryAdd(record.RunId!, run);
            }

            return true;
        }
    }

    /// <summary>
    /// How many deliveries of a task have a record, and whether one of them started at
    /// <paramref name="startedAt"/> (the claim of a delivery that ended without a commit has none).
    /// Deliveries are numbered from 1 without gaps (IRunStore.ClaimTaskAsync counts them), so the
    /// count is the first number without a record.
    /// </summary>
    public (int Deliveries, bool Recorded) DeliveriesOf(string runId, int index, DateTimeOffset? startedAt)
    {
        var count = 0;
        var recorded = false;
        RecordAt[] others;
        lock (_lock)
        {
            var run = _byRun.GetValueOrDefault(runId);
            for (var d = 1; run is not null && run.Deliveries.TryGetValue((index, d), out var at); d++)
            {
                count++;
                recorded |= startedAt is { } s && at.StartedAt == s.UtcTicks;
            }

            others = run is { Others.Count: > 0 } ? [.. run.Others] : [];
        }

        // A record of the run not keyed by its delivery (written by hand, none of the engine's) is
        // read back; a run without one (every run the engine wrote) reads nothing, at every claim.
        if (others.Length == 0)
        {
            return (count, recorded);
        }

        foreach (var r in Read(others, CancellationToken.None).Where(r => r.TaskIndex == index))
        {
            count++;
            recorded |= startedAt is { } s && r.StartedAt == s;
        }

        return (count, recorded);
    }

    public Task<IReadOnlyList<UsageRecord>> ForRunAsync(string runId, CancellationToken cancellationToken)
    {
        RecordAt[] at;
        lock (_lock)
        {
            at = _byRun.TryGetValue(runId, out var run) ? [.. run.Deliveries.Values.Select(d => d.At), .. run.Others] : [];
        }

        IReadOnlyList<UsageRecord> list = [.. Read(at, cancellationToken).OrderBy(r => r.TaskIndex).ThenBy(r => r.Delivery)];
        return Task.FromResult(list);
    }

    public Task<IReadOnlyList<UsageRow>> AggregateAsync(UsageQuery query, CancellationToken cancellationToken)
    {
        // Summed as they are read: memory holds the groups, not the records.
        var groups = new Dictionary<(DateTimeOffset Bucket, Tenancy.TenantId Tenant, string Kind, string Outcome, bool Harvested), UsageFigures>();
        foreach (var r in Read(Snapshot(), cancellationToken).Where(query.Matches))
        {
            var key = (query.BucketOf(r.EndedAt), r.Tenant, r.Kind, r.Outcome, r.Harvested);
            groups[key] = groups.GetValueOrDefault(key, UsageFigures.Zero).Add(UsageFigures.Of(r));
        }

        IReadOnlyList<UsageRow> rows = [.. groups.Select(g => new UsageRow(g.Key.Bucket, g.Key.Tenant, g.Key.Kind, g.Key.Outcome, g.Key.Harvested, g.Value))
            .OrderBy(r => r.Bucket).ThenBy(r => r.Tenant.Value, StringComparer.Ordinal).ThenBy(r => r.Kind, StringComparer.Ordinal)
            .ThenBy(r => r.Outcome, StringComparer.Ordinal).ThenBy(r => r.Harvested)];
        return Task.FromResult(rows);
    }

    public async IAsyncEnumerable<UsageRecord> RecordsAsync(UsageQuery query, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Ordered by where the matching records are (their end and id), then read again one by one.
        var order = ReadPlaced(Snapshot(), cancellationToken)
            .Where(p => query.Matches(p.Record))
            .Select(p => (p.Record.EndedAt, p.Record.Id, p.At))
            .ToList();
        order.Sort((a, b) => a.EndedAt != b.EndedAt ? a.EndedAt.CompareTo(b.EndedAt) : string.CompareOrdinal(a.Id, b.Id));
        foreach (var r in Read(order.Select(o => o.At).ToList(), cancellationToken))
        {
            yield return r;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    public void Dispose() => _spill.Dispose();

    private RecordAt[] Snapshot()
    {
        lock (_lock)
        {
            return [.. _all];
        }
    }

    private IEnumerable<UsageRecord> Read(IReadOnlyList<RecordAt> at, CancellationToken cancellationToken) =>
        _spill.Read(at.Select(p => (p.Offset, p.Length)), UsageJson.Default.UsageRecord, cancellationToken);

    /// <summary>The records at <paramref name="at"/>, each with where it is, read one by one from the spill file as they are taken.</summary>
    private IEnumerable<(UsageRecord Record, RecordAt At)> ReadPlaced(IReadOnlyList<RecordAt> at, CancellationToken cancellationToken) =>
        Read(at, cancellationToken).Zip(at);
}
