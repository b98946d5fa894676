using Pipelines.Queue;
using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.Functions;

/// <summary>
/// The function store of the embedded mode (no PostgreSQL configured): one process, kept in
/// memory under one lock with the same rules as <see cref="PostgresFunctionStore"/> (they are on
/// <see cref="IFunctionStore"/>). Nothing outlives the process.
/// </summary>
internal sealed class InMemoryFunctionStore : IFunctionStore, IInvocationBacklog
{
    private readonly Lock _lock = new();

    // By name, then tenant (as PostgreSQL's listing orders them).
    private readonly SortedDictionary<(string Name, string Tenant), Function> _functions = new(Comparer<(string Name, string Tenant)>.Create(
        (a, b) => string.CompareOrdinal(a.Name, b.Name) is var byName and not 0 ? byName : string.CompareOrdinal(a.Tenant, b.Tenant)));

    private readonly Dictionary<string, Invocation> _invocations = new(StringComparer.Ordinal);

    // Null: the whole store (names in the default tenant; invocations by id, listings and figures of every tenant).
    private readonly TenantId? _tenant;

    // The ledger an invocation's end is written to (Usage/InvocationUsage), shared with the in-memory run store.
    private readonly InMemoryUsageStore _usage;

    public InMemoryFunctionStore(InMemoryUsageStore? usage = null) => _usage = usage ?? new InMemoryUsageStore();

    /// <summary>A view of <paramref name="whole"/>'s data: the same collections under the same lock.</summary>
    private InMemoryFunctionStore(InMemoryFunctionStore whole, TenantId? tenant) =>
        (_lock, _functions, _invocations, _usage, _tenant) = (whole._lock, whole._functions, whole._invocations, whole._usage, tenant);

    private TenantId Home => _tenant ?? TenantId.Default;

    public IFunctionStore For(TenantScope scope) => scope.Narrow(_tenant) is var t && t == _tenant ? this : new InMemoryFunctionStore(this, t);

    private (string Name, string Tenant) Key(string name) => (name, Home.Value);

    private bool InScope(TenantId owner) => _tenant is not { } t || t == owner;

    /// <summary>The invocation of that id in this store's scope, or null.</summary>
    private Invocation? Find(string id) => _invocations.GetValueOrDefault(id) is { } i && InScope(i.Record.Tenant) ? i : null;

    /// <summary>A function: its versions by number, and which is current.</summary>
    private sealed class Function
    {
        public int Current { get; set; }

        public SortedDictionary<int, FunctionVersion> Versions { get; } = [];
    }

    /// <summary>An invocation as recorded, and whether it waited for its container to start (kept for the figures only, as PostgreSQL keeps it).</summary>
    private sealed class Invocation(InvocationRecord record)
    {
        public InvocationRecord Record { get; set; } = record;

        public bool? ColdStart { get; set; }

        /// <summary>Whether the dispatcher released it (its job is queued); an async invocation waits for that.</summary>
        public bool Released { get; set; }

        /// <summary>The caller's trace, for its job (kept apart: not read back with the record, as PostgreSQL's).</summary>
        public string? TraceParent { get; init; }
    }

    public Task<DeployResult> DeployAsync(FunctionSpec spec, string yaml, string imageDigest, string contentSha256, string deployedBy, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_functions.TryGetValue(Key(spec.Name), out var function))
            {
                function = new Function();
                _functions.Add(Key(spec.Name), function);
            }

            var current = function.Current;
            if (current > 0 && string.Equals(function.Versions[current].ContentSha256, contentSha256, StringComparison.Ordinal))
            {
                return Task.FromResult(new DeployResult(function.Versions[current], Created: false, Replaced: null));
            }

            var version = new FunctionVersion(spec.Name, current + 1, spec, imageDigest, yaml, contentSha256, now, deployedBy) { Tenant = Home };
            function.Versions.Add(version.Version, version);
            function.Current = version.Version;
            return Task.FromResult(new DeployResult(version, Created: true, Replaced: current > 0 ? current : null));
        }
    }

    public Task<FunctionVersion?> GetAsync(string name, int? version, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_functions.TryGetValue(Key(name), out var function) && function.Versions.TryGetValue(version ?? function.Current, out var v) ? v : null);
        }
    }

    public Task<IReadOnlyList<FunctionVersion>> ListAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<FunctionVersion>>(_functions.Values.Select(f => f.Versions[f.Current]).Where(v => InScope(v.Tenant)).ToList());
        }
    }

    public Task<IReadOnlyList<FunctionVersion>> VersionsAsync(string name, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<FunctionVersion>>(_functions.TryGetValue(Key(name), out var function) ? function.Versions.Values.Reverse().ToList() : []);
        }
    }

    public Task<IReadOnlyList<int>> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_functions.Remove(Key(name), out var function))
            {
                return Task.FromResult<IReadOnlyList<int>>([]);
            }

            // As the foreign key's cascade does: a function's invocations go with it.
            foreach (var id in _invocations.Where(i => i.Value.Record.Tenant == Home && i.Value.Record.Function == name).Select(i => i.Key).ToList())
            {
                _invocations.Remove(id);
            }

            return Task.FromResult<IReadOnlyList<int>>(function.Versions.Keys.Reverse().ToList());
        }
    }

    public Task AddInvocationAsync(InvocationRecord invocation, CancellationToken cancellationToken)
    {
        invocation = invocation with { Tenant = _tenant ?? invocation.Tenant };
        lock (_lock)
        {
            if (!_functions.ContainsKey((invocation.Function, invocation.Tenant.Value)))
            {
                throw new UnknownFunctionException(invocation.Function);
            }

            if (_invocations.ContainsKey(invocation.Id))
            {
                throw new ArgumentException($"invocation {invocation.Id} exists already", nameof(invocation));
            }

            // As the insert writes it: what the end records is empty until FinishAsync.
            _invocations.Add(invocation.Id, new Invocation(invocation with
            {
                TraceParent = null,
                OutputSha256 = null,
                OutputBytes = null,
                OutputName = null,
                ContentType = null,
                HttpStatus = null,
                LatencyMs = null,
                ContainerId = null,
                FinishedAt = null,
                Error = null,
                ShadowEqual = null,
            })
            { TraceParent = invocation.TraceParent });
            return Task.CompletedTask;
        }
    }

    /// <summary>An async invocation not ended (nor a shadow copy): the dispatcher's to count.</summary>
    private static bool Waiting(Invocation i) => i.Record is { Async: true, ShadowOf: null, Status: InvocationStatus.Queued or InvocationStatus.Running };

    public Task<IReadOnlyList<InvocationLoad>> LoadsAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            // One pass over the kept invocations (the embedded mode's few); the rule is PostgreSQL's query's.
            IReadOnlyList<InvocationLoad> loads = _invocations.Values.Where(i => InScope(i.Record.Tenant) && Waiting(i))
                .GroupBy(i => i.Record.Tenant)
                .Select(g => new InvocationLoad(
                    g.Key,
                    g.Count(i => !i.Released && i.Record.Status == InvocationStatus.Queued),
                    g.Count(i => i.Released && i.Record.Held is null)))
                .ToList();
            return Task.FromResult(loads);
        }
    }

    public Task<IReadOnlyList<PendingInvocation>> OldestPendingAsync(TenantId tenant, int count, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            IReadOnlyList<PendingInvocation> pending = _invocations.Values
                .Where(i => i.Record.Tenant == tenant && InScope(tenant) && Waiting(i) && !i.Released && i.Record.Status == InvocationStatus.Queued)
                .OrderBy(i => i.Record.StartedAt).ThenBy(i => i.Record.Id, StringComparer.Ordinal)
                .Take(count)
                .Select(i => new PendingInvocation(i.Record.Id, i.TraceParent))
                .ToList();
            return Task.FromResult(pending);
        }
    }

    public Task MarkReleasedAsync(IReadOnlyList<string> ids, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            foreach (var id in ids)
            {
                if (Find(id) is { } i && !i.Released)
                {
                    i.Released = true;
                    i.Record = i.Record with { Held = null };
                }
            }

            return Task.CompletedTask;
        }
    }

    public Task HoldPendingAsync(TenantId tenant, string held, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            foreach (var i in _invocations.Values.Where(i => i.Record.Tenant == tenant && InScope(tenant) && Waiting(i) && !i.Released && i.Record.Status == InvocationStatus.Queued))
            {
                i.Record = i.Record with { Held = held };
            }

            return Task.CompletedTask;
        }
    }

    public Task<bool> TryStartAsync(string id, FunctionVersion servedBy, string? route, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (Find(id) is not { } i || InvocationStatuses.HasEnded(i.Record.Status))
            {
                return Task.FromResult(false);
            }

            i.Record = i.Record with { Status = InvocationStatus.Running, ImageDigest = servedBy.ImageDigest, AlgorithmVersion = servedBy.AlgorithmVersion, Route = route, Held = null };
            return Task.FromResult(true);
        }
    }

    public Task HoldAsync(string id, string reason, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (Find(id) is { Record.Status: InvocationStatus.Queued or InvocationStatus.Running } i)
            {
                i.Record = i.Record with { Held = reason, Status = InvocationStatus.Queued };
            }

            return Task.CompletedTask;
        }
    }

    public Task<bool> FinishAsync(string id, InvocationEnd end, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (Find(id) is not { } i || InvocationStatuses.HasEnded(i.Record.Status))
            {
                return Task.FromResult(false);
            }

            var ended = new EndedInvocation(i.Record, end, now);
            i.Record = ended.Record;
            i.ColdStart = end.ColdStart;
            _usage.Add(InvocationUsage.Of(ended));
            return Task.FromResult(true);
        }
    }

    public Task<int> AddEndedAsync(IReadOnlyList<EndedInvocation> ended, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var written = 0;
            foreach (var e in ended)
            {
                var record = e.Record with { Tenant = _tenant ?? e.Record.Tenant };
                if (_functions.ContainsKey((record.Function, record.Tenant.Value)) && !_invocations.ContainsKey(record.Id))
                {
                    _invocations.Add(record.Id, new Invocation(record) { ColdStart = e.End.ColdStart });
                    _usage.Add(InvocationUsage.Of(e with { Started = e.Started with { Tenant = record.Tenant } }));
                    written++;
                }
            }

            return Task.FromResult(written);
        }
    }

    public Task<InvocationRecord?> GetInvocationAsync(string id, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(Find(id)?.Record);
        }
    }

    public Task<IReadOnlyList<InvocationRecord>> ListInvocationsAsync(string function, int limit, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<InvocationRecord>>(_invocations.Values.Select(i => i.Record).Where(r => r.Tenant == Home && r.Function == function)
                .OrderByDescending(r => r.StartedAt).ThenBy(r => r.Id, StringComparer.Ordinal).Take(Math.Max(0, limit)).ToList());
        }
    }

    public Task<IReadOnlyList<InvocationStats>> StatsAsync(string? function, DateTimeOffset? since, CancellationToken cancellationToken)
    {
        List<Invocation> rows;
        lock (_lock)
        {
            rows = _invocations.Values.Where(i => InScope(i.Record.Tenant)
                    && (function is null || (i.Record.Tenant == Home && i.Record.Function == function)) && (since is null || i.Record.StartedAt >= since))
                .Select(i => new Invocation(i.Record) { ColdStart = i.ColdStart }).ToList();
        }

        var stats = rows
            .GroupBy(i => (i.Record.Function, i.Record.Tenant, i.Record.Version, i.Record.AlgorithmVersion, Shadow: i.Record.Route == Routes.Shadow))
            .Select(g =>
            {
                var latencies = g.Where(i => i.Record.LatencyMs is not null).Select(i => i.Record.LatencyMs!.Value).Order().ToList();
                var warm = g.Where(i => i.Record.LatencyMs is not null && i.ColdStart != true).Select(i => i.Record.LatencyMs!.Value).Order().ToList();
                return new InvocationStats(
                    g.Key.Function, g.Key.Version, g.Count(), g.Count(i => InvocationStatuses.IsError(i.Record.Status)),
                    Percentile(latencies, 0.5), Percentile(latencies, 0.95), g.Max(i => i.Record.StartedAt))
                {
                    AlgorithmVersion = g.Key.AlgorithmVersion,
                    Shadow = g.Key.Shadow,
                    Ended = g.Count(i => InvocationStatuses.HasEnded(i.Record.Status)),
                    Equal = g.Count(i => i.Record.ShadowEqual == true),
                    Different = g.Count(i => i.Record.ShadowEqual == false),
                    ColdStarts = g.Count(i => i.ColdStart == true),
                    WarmP95Ms = Percentile(warm, 0.95),
                    Refused = g.Count(i => i.Record.Status == InvocationStatus.Refused),
                    Tenant = g.Key.Tenant,
                };
            })
            .OrderBy(s => s.Function, StringComparer.Ordinal)
            .ThenBy(s => s.Tenant.Value, StringComparer.Ordinal)
            .ThenByDescending(s => s.Version)
            .ThenBy(s => s.Shadow)
            .ThenBy(s => s.AlgorithmVersion is null)
            .ThenBy(s => s.AlgorithmVersion, StringComparer.Ordinal)
            .ToList();
        return Task.FromResult<IReadOnlyList<InvocationStats>>(stats);
    }

    /// <summary>PostgreSQL's percentile_cont over sorted values: linear between the two nearest ranks; null over none.</summary>
    private static double? Percentile(List<double> sorted, double fraction)
    {
        if (sorted.Count == 0)
        {
            return null;
        }

        var at = fraction * (sorted.Count - 1);
        var below = (int)Math.Floor(at);
        var above = (int)Math.Ceiling(at);
        return sorted[below] + ((sorted[above] - sorted[below]) * (at - below));
    }

    public Task<int> PruneAsync(InvocationRetention retention, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            // The Keep-th newest start: everything strictly older goes (ties at the cut stay).
            var mine = _invocations.Values.Where(i => InScope(i.Record.Tenant)).ToList();
            var starts = mine.Select(i => i.Record.StartedAt).OrderDescending().ToList();
            var keep = Math.Max(0, retention.Keep - 1);
            var cut = now - retention.KeepFor;
            if (keep < starts.Count && starts[keep] > cut)
            {
                cut = starts[keep];
            }

            var doomed = mine.Where(i => i.Record.StartedAt < cut).OrderBy(i => i.Record.StartedAt)
                .Take(IFunctionStore.PruneBatch).Select(i => i.Record.Id).ToList();
            foreach (var id in doomed)
            {
                _invocations.Remove(id);
            }

            return Task.FromResult(doomed.Count);
        }
    }
}
