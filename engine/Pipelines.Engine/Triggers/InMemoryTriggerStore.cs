using System.Globalization;
using Pipelines.Tenancy;

namespace Pipelines.Triggers;

/// <summary>
/// The triggers' store of the embedded mode (no PostgreSQL configured): one process, kept in
/// memory under one lock with the same rules as <see cref="PostgresTriggerStore"/> (they are on
/// <see cref="ITriggerStore"/>); a trigger's lock is held in this process. Nothing outlives it.
/// </summary>
internal sealed class InMemoryTriggerStore : ITriggerStore
{
    private readonly Lock _lock = new();

    // By name, then tenant (as PostgreSQL's listing orders them).
    private readonly SortedDictionary<(string Name, string Tenant), Workflow> _workflows = new(Comparer<(string Name, string Tenant)>.Create(
        (a, b) => string.CompareOrdinal(a.Name, b.Name) is var byName and not 0 ? byName : string.CompareOrdinal(a.Tenant, b.Tenant)));

    private readonly Dictionary<string, Batch> _batches = new(StringComparer.Ordinal);
    private readonly HashSet<string> _held = new(StringComparer.Ordinal);

    // Null: the whole store (names in the default tenant, listings of every tenant).
    private readonly TenantId? _tenant;

    public InMemoryTriggerStore()
    {
    }

    /// <summary>A view of <paramref name="whole"/>'s data: the same collections under the same lock.</summary>
    private InMemoryTriggerStore(InMemoryTriggerStore whole, TenantId? tenant) =>
        (_lock, _workflows, _batches, _held, _tenant) = (whole._lock, whole._workflows, whole._batches, whole._held, tenant);

    private TenantId Home => _tenant ?? TenantId.Default;

    public ITriggerStore For(TenantScope scope) => scope.Narrow(_tenant) is var t && t == _tenant ? this : new InMemoryTriggerStore(this, t);

    private (string Name, string Tenant) Key(string workflow) => (workflow, Home.Value);

    private bool InScope(TenantId owner) => _tenant is not { } t || t == owner;

    /// <summary>A registered workflow with its ledger (by bucket, key and ETag) and checkpoint.</summary>
    private sealed class Workflow(RegisteredTrigger trigger)
    {
        public RegisteredTrigger Trigger { get; set; } = trigger;

        public Dictionary<(string Bucket, string Key, string ETag), Entry> Ledger { get; } = [];

        public bool BaselineDone { get; set; }

        public string? StartAfter { get; set; }

        public DateTimeOffset? LastFullAt { get; set; }

        public long? LastFullListed { get; set; }

        public DateTimeOffset? LastPollAt { get; set; }

        public string? LastPollMode { get; set; }

        public long? LastPollListed { get; set; }

        public string? LastError { get; set; }

        public DateTimeOffset? LastErrorAt { get; set; }
    }

    /// <summary>One object version in the ledger.</summary>
    private sealed class Entry(string bucket, LedgerObject o, LedgerState state, string source, DateTimeOffset seenAt, string? note)
    {
        public string Bucket { get; } = bucket;

        public LedgerObject Object { get; set; } = o;

        public LedgerState State { get; set; } = state;

        public string Source { get; set; } = source;

        public DateTimeOffset SeenAt { get; set; } = seenAt;

        public string? RunId { get; set; }

        public string? Note { get; set; } = note;
    }

    /// <summary>A batch: claimed, then started or failed.</summary>
    private sealed class Batch(TenantId tenant, string workflow, DateTimeOffset claimedAt)
    {
        public TenantId Tenant { get; } = tenant;

        public string Workflow { get; } = workflow;

        public string State { get; set; } = "claimed";

        public DateTimeOffset ClaimedAt { get; } = claimedAt;

        public DateTimeOffset? StartedAt { get; set; }

        public string? Error { get; set; }
    }

    public Task<bool> UpsertAsync(RegisteredTrigger trigger, DateTimeOffset now, CancellationToken cancellationToken)
    {
        trigger = trigger with { Tenant = _tenant ?? trigger.Tenant };
        lock (_lock)
        {
            if (!_workflows.TryGetValue((trigger.Name, trigger.Tenant.Value), out var w))
            {
                _workflows.Add((trigger.Name, trigger.Tenant.Value), new Workflow(trigger with { RegisteredAt = now }));
                return Task.FromResult(true);
            }

            var oldUri = w.Trigger.Uri;
            w.Trigger = trigger with { RegisteredAt = w.Trigger.RegisteredAt };
            if (string.Equals(oldUri, trigger.Uri, StringComparison.Ordinal))
            {
                return Task.FromResult(!w.BaselineDone);
            }

            foreach (var e in w.Ledger.Values.Where(e => e.State == LedgerState.Pending))
            {
                e.State = LedgerState.Dropped;
                e.Note = "pending when the trigger uri changed from " + oldUri;
            }

            // The checkpoint starts again, as a new registration's.
            w.BaselineDone = false;
            w.StartAfter = null;
            w.LastFullAt = w.LastPollAt = w.LastErrorAt = null;
            w.LastFullListed = w.LastPollListed = null;
            w.LastPollMode = w.LastError = null;
            return Task.FromResult(true);
        }
    }

    public Task CompleteBaselineAsync(string workflow, string? startAfter, DateTimeOffset now, long listed, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_workflows.TryGetValue(Key(workflow), out var w))
            {
                w.BaselineDone = true;
                w.StartAfter = startAfter;
                w.LastFullAt = w.LastPollAt = now;
                w.LastFullListed = w.LastPollListed = listed;
                w.LastPollMode = "baseline";
            }

            return Task.CompletedTask;
        }
    }

    public Task<bool> IsBaselineDoneAsync(string workflow, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_workflows.GetValueOrDefault(Key(workflow))?.BaselineDone == true);
        }
    }

    public Task<bool> RemoveAsync(string workflow, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_workflows.Remove(Key(workflow)))
            {
                return Task.FromResult(false);
            }

            // As the foreign keys' cascade does: the workflow's batches go with it.
            foreach (var runId in _batches.Where(b => b.Value.Tenant == Home && b.Value.Workflow == workflow).Select(b => b.Key).ToList())
            {
                _batches.Remove(runId);
            }

            return Task.FromResult(true);
        }
    }

    public Task<IReadOnlyList<RegisteredTrigger>> ListAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<RegisteredTrigger>>(_workflows.Values.Select(w => w.Trigger).Where(t => InScope(t.Tenant)).ToList());
        }
    }

    public Task<RegisteredTrigger?> GetAsync(string workflow, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_workflows.GetValueOrDefault(Key(workflow))?.Trigger);
        }
    }

    public Task<int> RecordAsync(string workflow, string bucket, IReadOnlyList<(LedgerObject Object, LedgerState State, string? Note)> objects, string source, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_workflows.TryGetValue(Key(workflow), out var w))
            {
                return Task.FromResult(0);
            }

            var recorded = 0;
            foreach (var (o, state, note) in objects)
            {
                var at = (bucket, o.Key, o.ETag);
                if (!w.Ledger.TryGetValue(at, out var e))
                {
                    w.Ledger.Add(at, new Entry(bucket, o, state, source, now, note));
                    recorded++;
                }
                else if (e.State == LedgerState.Deleted && state == LedgerState.Pending)
                {
                    (e.State, e.SeenAt, e.Source, e.Note) = (LedgerState.Pending, now, source, null);
                    e.Object = e.Object with { LandedAt = o.LandedAt ?? e.Object.LandedAt };
                    recorded++;
                }
            }

            return Task.FromResult(recorded);
        }
    }

    public Task<int> MarkDeletedAsync(string workflow, string bucket, string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var pending = Pending(workflow).Where(e => e.Bucket == bucket && e.Object.Key == key).ToList();
            foreach (var e in pending)
            {
                e.State = LedgerState.Deleted;
                e.Note = $"removed {now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)} before a run took it";
            }

            return Task.FromResult(pending.Count);
        }
    }

    public Task<PendingObjects> PendingAsync(string workflow, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var pending = Pending(workflow).ToList();
            return Task.FromResult(new PendingObjects(pending.Count, pending.Count == 0 ? null : pending.Max(e => e.SeenAt)));
        }
    }

    public Task<TriggerBatch?> ClaimAsync(string workflow, string runId, int max, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var picked = Pending(workflow).OrderBy(e => e.SeenAt).ThenBy(e => e.Object.Key, StringComparer.Ordinal).Take(Math.Max(0, max)).ToList();
            if (picked.Count == 0)
            {
                return Task.FromResult<TriggerBatch?>(null);
            }

            if (_batches.ContainsKey(runId))
            {
                throw new ArgumentException($"run {runId} has a batch already", nameof(runId));
            }

            foreach (var e in picked)
            {
                (e.State, e.RunId) = (LedgerState.Claimed, runId);
            }

            _batches.Add(runId, new Batch(Home, workflow, now));
            return Task.FromResult<TriggerBatch?>(new TriggerBatch(runId, workflow, picked.Select(e => e.Object).OrderBy(o => o.Key, StringComparer.Ordinal).ToList(), now)
            {
                FirstSeenAt = picked.Min(e => e.SeenAt),
                LandedAt = picked.Min(e => e.Object.LandedAt ?? e.SeenAt),
            });
        }
    }

    public Task<IReadOnlyList<TriggerBatch>> OpenBatchesAsync(string workflow, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<TriggerBatch>>(_batches
                .Where(b => b.Value.Tenant == Home && b.Value.Workflow == workflow && b.Value.State == "claimed")
                .OrderBy(b => b.Value.ClaimedAt).ThenBy(b => b.Key, StringComparer.Ordinal)
                .Select(b => new TriggerBatch(b.Key, workflow, ObjectsOf(b.Key), b.Value.ClaimedAt))
                .ToList());
        }
    }

    public Task<IReadOnlyList<LedgerObject>> BatchObjectsAsync(string runId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<LedgerObject>>(ObjectsOf(runId));
        }
    }

    public Task<bool> FinishBatchAsync(string runId, bool started, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_batches.TryGetValue(runId, out var b) || b.State != "claimed" || !InScope(b.Tenant))
            {
                return Task.FromResult(false);
            }

            (b.State, b.StartedAt, b.Error) = (started ? "started" : "failed", now, error);
            return Task.FromResult(true);
        }
    }

    public Task<TriggerPollState> GetPollStateAsync(string workflow, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var w = _workflows.GetValueOrDefault(Key(workflow));
            return Task.FromResult(new TriggerPollState(w?.StartAfter, w?.LastFullAt, w?.LastFullListed));
        }
    }

    public Task SavePollAsync(string workflow, PollOutcome poll, bool full, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_workflows.TryGetValue(Key(workflow), out var w))
            {
                (w.LastPollAt, w.LastPollMode, w.LastPollListed) = (poll.At, poll.Mode, poll.Listed);
                w.StartAfter = poll.StartAfter ?? w.StartAfter;
                if (full)
                {
                    (w.LastFullAt, w.LastFullListed) = (poll.At, poll.Listed);
                }
            }

            return Task.CompletedTask;
        }
    }

    public Task SaveErrorAsync(string workflow, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_workflows.TryGetValue(Key(workflow), out var w))
            {
                w.LastError = error;
                w.LastErrorAt = error is null ? w.LastErrorAt : now;
            }

            return Task.CompletedTask;
        }
    }

    public Task<IReadOnlyList<TriggerSummary>> SummariesAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<TriggerSummary>>(_workflows.Values.Where(w => InScope(w.Trigger.Tenant)).Select(w =>
            {
                var entries = w.Ledger.Values;
                var batches = _batches.Where(b => b.Value.Tenant == w.Trigger.Tenant && b.Value.Workflow == w.Trigger.Name).ToList();
                var last = batches.Where(b => b.Value.State == "started")
                    .OrderByDescending(b => b.Value.ClaimedAt).ThenByDescending(b => b.Key, StringComparer.Ordinal).FirstOrDefault();
                return new TriggerSummary(
                    w.Trigger.Name, w.Trigger.Uri, w.Trigger.Settle, w.Trigger.RegisteredAt,
                    w.LastPollAt, w.LastPollMode, w.LastPollListed, w.LastError, w.LastErrorAt,
                    entries.Count(e => e.State is not (LedgerState.Baseline or LedgerState.Rejected)),
                    entries.Count(e => e.State == LedgerState.Pending),
                    entries.Count(e => e.State == LedgerState.Baseline),
                    entries.Count(e => e.State == LedgerState.Rejected),
                    batches.Count(b => b.Value.State == "started"),
                    batches.Count(b => b.Value.State == "failed"),
                    last.Key,
                    last.Value?.ClaimedAt)
                {
                    Tenant = w.Trigger.Tenant,
                };
            }).ToList());
        }
    }

    public Task<IAsyncDisposable?> TryLockAsync(string workflow, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var key = Home.Value + "/" + workflow;
            return Task.FromResult<IAsyncDisposable?>(_held.Add(key) ? new HeldLock(this, key) : null);
        }
    }

    private IEnumerable<Entry> Pending(string workflow) =>
        _workflows.TryGetValue(Key(workflow), out var w) ? w.Ledger.Values.Where(e => e.State == LedgerState.Pending) : [];

    private List<LedgerObject> ObjectsOf(string runId) =>
        _workflows.Values.Where(w => InScope(w.Trigger.Tenant)).SelectMany(w => w.Ledger.Values).Where(e => e.RunId == runId).Select(e => e.Object).OrderBy(o => o.Key, StringComparer.Ordinal).ToList();

    /// <summary>A held lock: released once, however often it is disposed.</summary>
    private sealed class HeldLock(InMemoryTriggerStore store, string key) : IAsyncDisposable
    {
        private int _released;

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                lock (store._lock)
                {
                    store._held.Remove(key);
                }
            }

            return ValueTask.CompletedTask;
        }
    }
}
