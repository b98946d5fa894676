using System.Text.Json;
using Pipelines.Storage;
using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.RunStore;

/// <summary>
/// The run store of the embedded mode (no PostgreSQL configured): one process, kept in memory
/// with the same conditional semantics as <see cref="PostgresRunStore"/> (the rules are on
/// <see cref="IRunStore"/>). What a user keeps of a run (run.json, provenance, results) is
/// written to the output location either way.
/// </summary>
/// <remarks>
/// Provenance rows, the bulk of what a finished task leaves (its command, inputs and outputs
/// with their digests: about 1.5 KB a row), are not held in memory: each is appended as JSON to
/// one spill file, and memory keeps where it is (24 bytes a row), so a run of 100,000 one-file
/// tasks does not grow the process by its rows. The file is unlinked as soon as it is opened:
/// it lives as long as the process (or <see cref="Dispose"/>), and a killed engine leaves none.
/// Rows are stored as PostgreSQL stores them (their JSON), so a row read back is a copy, never
/// the object the worker committed.
/// </remarks>
internal sealed class InMemoryRunStore(string? spillDirectory = null, InMemoryUsageStore? usage = null) : IRunStore, IDisposable
{
    /// <summary>The ledger its commits and claims write (one of its own when none is shared).</summary>
    public InMemoryUsageStore Usage { get; } = usage ?? new InMemoryUsageStore(spillDirectory);

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Entry> _runs = new(StringComparer.Ordinal);
    private readonly Dictionary<TenantId, TenantUse> _usage = [];
    private readonly SpillFile _spill = new(spillDirectory, "provenance");

    /// <summary>Where one provenance row is in the spill file, with what orders it.</summary>
    private readonly record struct RowAt(int Index, int StepRank, int Attempt, long Offset, int Length);

    /// <summary>
    /// A run with its tasks (a task's index is its position) and where its provenance rows are.
    /// Its tasks change only through <see cref="Set"/>, <see cref="Add"/>, <see cref="Release"/>
    /// and <see cref="Unrelease"/>, which keep its counts of pending and in-flight tasks as they
    /// change: the dispatcher looks at them after every task's end, and a look over every task
    /// grew with the run (docs/benchmarks.md, "The managed CPU of a one-file task").
    /// </summary>
    private sealed class Entry
    {
        private readonly List<TaskRecord> _tasks;
        private readonly Dictionary<int, DateTimeOffset> _released = [];

        // No task below it is pending: a release looks from here, not from the first task.
        private int _firstPending;

        public Entry(RunRecord run, List<TaskRecord> tasks)
        {
            (Run, _tasks) = (run, tasks);
            for (var i = 0; i < tasks.Count; i++)
            {
                Count(i, 1);
            }
        }

        public RunRecord Run { get; set; }

        public IReadOnlyList<TaskRecord> Tasks => _tasks;

        public List<RowAt> Provenance { get; } = [];

        public string? GatherJob { get; set; }

        /// <summary>
        /// When each released task was released (a task not here is pending while queued). Only a
        /// queued task's entry is ever read (pending, in flight, stuck), so a task's entry goes when
        /// the task ends: the map holds the tasks in flight, not every task the run has released.
        /// </summary>
        public IReadOnlyDictionary<int, DateTimeOffset> Released => _released;

        /// <summary>Its tasks queued and not released (<see cref="IsPending"/>), counted as they change.</summary>
        public int Pending { get; private set; }

        /// <summary>Its tasks running, or queued and released (<see cref="InFlightTask"/>), counted as they change.</summary>
        public int InFlight { get; private set; }

        /// <summary>Whether the run may still start tasks.</summary>
        public bool Starts => Run.State == RunState.Running && Run.StopReason is null;

        public bool IsPending(TaskRecord t) => t.State == TaskState.Queued && !_released.ContainsKey(t.Index);

        public bool InFlightTask(TaskRecord t) => t.State == TaskState.Running || (t.State == TaskState.Queued && _released.ContainsKey(t.Index));

        public void Set(int index, TaskRecord task)
        {
            Count(index, -1);
            _tasks[index] = task;
            Count(index, 1);
        }

        public void Add(TaskRecord task)
        {
            _tasks.Add(task);
            Count(_tasks.Count - 1, 1);
        }

        public void Release(int index, DateTimeOffset at)
        {
            Count(index, -1);
            _released[index] = at;
            Count(index, 1);
        }

        public void Unrelease(int index)
        {
            Count(index, -1);
            _released.Remove(index);
            Count(index, 1);
        }

        /// <summary>The pending tasks' indexes, in order; the tasks may be changed while they are walked.</summary>
        public IEnumerable<int> PendingIndexes()
        {
            while (_firstPending < _tasks.Count && !IsPending(_tasks[_firstPending]))
            {
                _firstPending++;
            }

            for (var i = _firstPending; i < _tasks.Count && Pending > 0; i++)
            {
                if (IsPending(_tasks[i]))
                {
                    yield return i;
                }
            }
        }

        private void Count(int index, int by)
        {
            var t = _tasks[index];
            if (IsPending(t))
            {
                Pending += by;
                _firstPending = by > 0 ? Math.Min(_firstPending, index) : _firstPending;
            }
            else if (InFlightTask(t))
            {
                InFlight += by;
            }
        }
    }

    public Task CreateRunAsync(RunRecord run, IReadOnlyList<TaskRecord> tasks, CancellationToken cancellationToken)
    {
        if (tasks.Count == 0)
        {
            throw new ArgumentException($"run {run.RunId}: a run needs at least one task", nameof(tasks));
        }

        Add(run, tasks);
        return Task.CompletedTask;
    }

    public async Task<int> CreateRunAsync(RunRecord run, IAsyncEnumerable<TaskRecord> tasks, CancellationToken cancellationToken)
    {
        // Checked before the stream is read too, as PostgreSQL's insert of the run row does.
        lock (_lock)
        {
            if (_runs.ContainsKey(run.RunId))
            {
                throw new DuplicateRunException(run.RunId);
            }
        }

        var list = new List<TaskRecord>();
        await foreach (var t in tasks.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            RunStoreRules.CheckCreated(run, t, list.Count);
            list.Add(t);
        }

        if (list.Count > 0)
        {
            Add(run, list);
        }

        return list.Count;
    }

    private void Add(RunRecord run, IReadOnlyList<TaskRecord> tasks)
    {
        for (var i = 0; i < tasks.Count; i++)
        {
            RunStoreRules.CheckCreated(run, tasks[i], i);
        }

        // As PostgreSQL stores it: the counts are the tasks', and nothing has ended yet.
        var created = run with { TaskCount = tasks.Count, Remaining = tasks.Count, FinishedAt = null, StopReason = null, Error = null };
        lock (_lock)
        {
            if (!_runs.TryAdd(run.RunId, new Entry(created, [.. tasks])))
            {
                throw new DuplicateRunException(run.RunId);
            }
        }
    }

    public Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_runs.GetValueOrDefault(runId)?.Run);
        }
    }

    public Task<Page<RunRecord>> QueryRunsAsync(RunQuery query, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var matching = _runs.Values.Select(e => e.Run)
                .Where(r => query.Matches(r.WorkflowName, r.State, r.CreatedAt, r.Tenant))
                .OrderByDescending(r => r.CreatedAt).ThenBy(r => r.RunId, StringComparer.Ordinal)
                .ToList();
            return Task.FromResult(new Page<RunRecord>(matching.Skip(query.Offset).Take(query.Limit).ToList(), matching.Count));
        }
    }

    public Task<Page<TaskRecord>> QueryTasksAsync(string runId, TaskQuery query, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var matching = (_runs.GetValueOrDefault(runId)?.Tasks ?? []).Where(t => query.State is null || t.State == query.State).ToList();
            return Task.FromResult(new Page<TaskRecord>(matching.Skip(query.Offset).Take(query.Limit).ToList(), matching.Count));
        }
    }

    public Task<TaskRecord?> GetTaskAsync(string runId, int index, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_runs.TryGetValue(runId, out var e) && index >= 0 && index < e.Tasks.Count ? e.Tasks[index] : null);
        }
    }

    public Task<IReadOnlyList<TaskRecord>> GetTasksAsync(string runId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<TaskRecord>>(_runs.TryGetValue(runId, out var e) ? e.Tasks.ToList() : []);
        }
    }

    public Task<TaskCounts> CountTasksAsync(string runId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            // One pass over the tasks (`pipelines run` asks four times a second while it follows the run).
            var byState = new int[Enum.GetValues<TaskState>().Max(s => (int)s) + 1];
            var held = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var x in _runs.GetValueOrDefault(runId)?.Tasks ?? [])
            {
                byState[(int)x.State]++;
                if (x is { State: TaskState.Queued, Hold: { } hold })
                {
                    held[hold.Reason] = held.GetValueOrDefault(hold.Reason) + 1;
                }
            }

            int C(TaskState s) => byState[(int)s];
            return Task.FromResult(new TaskCounts(C(TaskState.Queued), C(TaskState.Running), C(TaskState.Succeeded), C(TaskState.Failed), C(TaskState.Cached), C(TaskState.Cancelled)) { Split = C(TaskState.Split), HeldBecause = held });
        }
    }

    public Task<int?> ClaimTaskAsync(string runId, int index, string worker, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!TryFind(runId, index, out var e))
            {
                return Task.FromResult<int?>(null);
            }

            // A running task without a lease was claimed before leases existed: it counts as expired.
            var task = e.Tasks[index];
            var claimable = task.State == TaskState.Queued || (task.State == TaskState.Running && (task.LeaseUntil is null || task.LeaseUntil <= now));
            if (!claimable || e.Run.StopReason is not null || e.Run.State != RunState.Running)
            {
                return Task.FromResult<int?>(null);
            }

            // The deliveries before this one; a running task's last delivery ended without recording
            // its end (its worker was lost), so it is recorded vacated here (PostgresRunStore's rule).
            var (deliveries, recorded) = Usage.DeliveriesOf(runId, index, task.StartedAt);
            if (task.State == TaskState.Running && task.StartedAt is { } started && !recorded
                && Usage.Add(TaskUsage.Lost(runId, index, deliveries + 1, e.Run.Tenant, task.Worker, started, task.LeaseUntil, now, leaseUntil)))
            {
                deliveries++;
            }

            e.Set(index, task with { State = TaskState.Running, Worker = worker, StartedAt = now, LeaseUntil = leaseUntil, Hold = null });
            return Task.FromResult<int?>(deliveries);
        }
    }

    public Task<bool> HoldTaskAsync(string runId, int index, TaskHold hold, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!TryFind(runId, index, out var e) || e.Tasks[index].State != TaskState.Queued)
            {
                return Task.FromResult(false);
            }

            var task = e.Tasks[index];
            e.Set(index, task with { Hold = hold with { Since = task.Hold?.Since ?? hold.Since } });
            return Task.FromResult(true);
        }
    }

    public Task<bool> RenewLeaseAsync(string runId, int index, string worker, DateTimeOffset startedAt, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!TryFind(runId, index, out var e))
            {
                return Task.FromResult(false);
            }

            var task = e.Tasks[index];
            if (task.State != TaskState.Running || !string.Equals(task.Worker, worker, StringComparison.Ordinal) || task.StartedAt != startedAt)
            {
                return Task.FromResult(false);
            }

            e.Set(index, task with { LeaseUntil = leaseUntil });
            return Task.FromResult(true);
        }
    }

    public Task<(bool Committed, int Remaining)> CommitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, CancellationToken cancellationToken)
    {
        var ranks = RunStoreRules.StepRanks(rows);
        var json = Serialise(rows);
        lock (_lock)
        {
            var e = Find(runId, index);
            if (!EndTask(e, index, outcome.State, outcome, rows, ranks, json))
            {
                return Task.FromResult((false, e.Run.Remaining));
            }

            e.Run = e.Run with { Remaining = e.Run.Remaining - 1 };
            return Task.FromResult((true, e.Run.Remaining));
        }
    }

    public Task<(bool Committed, IReadOnlyList<int> Children, int Remaining)> SplitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, IReadOnlyList<TaskRecord> children, CancellationToken cancellationToken)
    {
        var ranks = RunStoreRules.StepRanks(rows);
        var json = Serialise(rows);
        lock (_lock)
        {
            var e = Find(runId, index);
            if (!EndTask(e, index, TaskState.Split, outcome, rows, ranks, json))
            {
                return Task.FromResult<(bool, IReadOnlyList<int>, int)>((false, [], e.Run.Remaining));
            }

            // As PostgreSQL stores a child: its id, inputs and captures; the rest is a new queued task.
            var first = e.Tasks.Count;
            foreach (var (c, i) in children.Select((c, i) => (c, i)))
            {
                e.Add(new TaskRecord(runId, first + i, c.TaskId, TaskState.Queued, c.Inputs, c.Captures, 0, null, null, null, null, null) { ParentIndex = index });
            }

            e.Run = e.Run with { TaskCount = e.Run.TaskCount + children.Count, Remaining = e.Run.Remaining - 1 + children.Count };
            return Task.FromResult<(bool, IReadOnlyList<int>, int)>((true, Enumerable.Range(first, children.Count).ToList(), e.Run.Remaining));
        }
    }

    /// <summary>Ends a task that has not ended yet, with its provenance rows (under the lock); false when it had ended.</summary>
    private bool EndTask(Entry e, int index, TaskState state, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, int[] ranks, byte[][] json)
    {
        var task = e.Tasks[index];
        if (task.State is not (TaskState.Queued or TaskState.Running))
        {
            return false;
        }

        // The rows first: a write that fails (a full disk, a disposed store) leaves the task open.
        var at = new RowAt[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            at[i] = new RowAt(index, ranks[i], rows[i].Attempt, _spill.Append(json[i]), json[i].Length);
        }

        // The usage record too (it goes to the ledger's spill file): a write that fails leaves the task open.
        if (outcome.Usage is { } used)
        {
            Usage.Add(used);
        }

        e.Set(index, task with
        {
            State = state,
            ExitCode = outcome.ExitCode,
            Error = outcome.Error,
            FinishedAt = outcome.FinishedAt,
            Attempts = rows.Count == 0 ? 0 : rows.Max(r => r.Attempt),
            Hold = null,
        });
        e.Provenance.AddRange(at);
        e.Unrelease(index);
        return true;
    }

    private static byte[][] Serialise(IReadOnlyList<ProvenanceRow> rows)
    {
        var json = new byte[rows.Count][];
        for (var i = 0; i < rows.Count; i++)
        {
            json[i] = JsonSerializer.SerializeToUtf8Bytes(rows[i], RunStoreJson.Default.ProvenanceRow);
        }

        return json;
    }

    public void Dispose() => _spill.Dispose();

    public Task RequestStopAsync(string runId, string reason, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var e = Find(runId);
            if (e.Run.StopReason is null)
            {
                e.Run = e.Run with { StopReason = reason };
            }
        }

        return Task.CompletedTask;
    }

    public Task<bool> TryBeginGatherAsync(string runId, string gatherJobId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_runs.TryGetValue(runId, out var e))
            {
                return Task.FromResult(false);
            }

            var mine = e.Run.State == RunState.Gathering && string.Equals(e.GatherJob, gatherJobId, StringComparison.Ordinal);
            if (e.Run.Remaining != 0 || !(e.Run.State == RunState.Running || mine))
            {
                return Task.FromResult(false);
            }

            e.Run = e.Run with { State = RunState.Gathering };
            e.GatherJob = gatherJobId;
            return Task.FromResult(true);
        }
    }

    public Task FinishRunAsync(string runId, RunState state, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var e = Find(runId);
            if (!e.Run.State.IsTerminal())
            {
                e.Run = e.Run with { State = state, Error = error, FinishedAt = now };
            }
        }

        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<ProvenanceRow>> GetProvenanceAsync(string runId, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ProvenanceRow>>(ProvenanceOf(runId, null, cancellationToken).ToList());

    public Task<IReadOnlyList<ProvenanceRow>> GetProvenanceAsync(string runId, IReadOnlyCollection<int> taskIndexes, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ProvenanceRow>>(ProvenanceOf(runId, taskIndexes, cancellationToken).ToList());

    public IAsyncEnumerable<ProvenanceRow> ReadProvenanceAsync(string runId, CancellationToken cancellationToken) =>
        ProvenanceOf(runId, null, cancellationToken).ToAsyncEnumerable();

    /// <summary>
    /// The rows read one by one from the spill file as they are taken: what memory holds for the
    /// read is where each row is (24 bytes a row, ordered here) and the row being read.
    /// </summary>
    private IEnumerable<ProvenanceRow> ProvenanceOf(string runId, IReadOnlyCollection<int>? taskIndexes, CancellationToken cancellationToken)
    {
        RowAt[] at;
        lock (_lock)
        {
            at = (_runs.GetValueOrDefault(runId)?.Provenance ?? []).Where(p => taskIndexes is null || taskIndexes.Contains(p.Index))
                .OrderBy(p => p.Index).ThenBy(p => p.StepRank).ThenBy(p => p.Attempt).ToArray();
        }

        // Read outside the lock: written rows never change (SpillFile).
        return _spill.Read(at.Select(p => (p.Offset, p.Length)), RunStoreJson.Default.ProvenanceRow, cancellationToken);
    }

    public Task<IReadOnlyList<TenantLoad>> TenantLoadsAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var loads = _runs.Values.GroupBy(e => e.Run.Tenant)
                .Select(g => new TenantLoad(g.Key, g.Where(e => e.Starts).Sum(e => e.Pending), g.Sum(e => e.InFlight)))
                .Where(l => l.Pending > 0 || l.InFlight > 0)
                .OrderBy(l => l.Tenant.Value, StringComparer.Ordinal);
            return Task.FromResult<IReadOnlyList<TenantLoad>>([.. loads]);
        }
    }

    public Task<IReadOnlyList<TaskKey>> ReleaseTasksAsync(TenantId tenant, int count, DateTimeOffset now, CancellationToken cancellationToken) =>
        Task.FromResult(Release(e => e.Run.Tenant == tenant, count, now));

    public Task<IReadOnlyList<TaskKey>> ReleaseOldestAsync(int count, IReadOnlyCollection<TenantId> except, DateTimeOffset now, CancellationToken cancellationToken) =>
        Task.FromResult(Release(e => !except.Contains(e.Run.Tenant), count, now));

    /// <summary>Releases up to <paramref name="count"/> pending tasks of the runs <paramref name="which"/> picks that may start tasks, oldest run first, by index.</summary>
    private IReadOnlyList<TaskKey> Release(Func<Entry, bool> which, int count, DateTimeOffset now)
    {
        lock (_lock)
        {
            var released = new List<TaskKey>();
            foreach (var e in _runs.Values.Where(e => which(e) && e.Starts).OrderBy(e => e.Run.RunId, StringComparer.Ordinal))
            {
                foreach (var i in e.PendingIndexes().Take(count - released.Count).ToList())
                {
                    var t = e.Tasks[i];
                    e.Release(i, now);
                    e.Set(i, t with { Hold = t.Hold?.Reason == HoldReasons.Quota ? null : t.Hold });
                    released.Add(new TaskKey(e.Run.RunId, i));
                }
            }

            return released;
        }
    }

    /// <summary>How many release times the run holds: its tasks released and not ended (what the prune keeps bounded).</summary>
    public int ReleaseTimesHeld(string runId)
    {
        lock (_lock)
        {
            return _runs.GetValueOrDefault(runId)?.Released.Count ?? 0;
        }
    }

    public Task<IReadOnlyList<TaskKey>> InFlightAsync(IReadOnlyList<TaskKey> keys, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<TaskKey>>([.. keys.Distinct()
                .Where(k => TryFind(k.RunId, k.Index, out var e) && e.InFlightTask(e.Tasks[k.Index]))
                .OrderBy(k => k.RunId, StringComparer.Ordinal).ThenBy(k => k.Index)]);
        }
    }

    public Task<IReadOnlyList<string>> StoppingWithPendingAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<string>>([.. _runs.Values.Where(e => e.Run.StopReason is not null && e.Pending > 0).Select(e => e.Run.RunId).Order(StringComparer.Ordinal)]);
        }
    }

    public Task<IReadOnlyList<int>> MarkPendingAsync(string runId, IReadOnlyList<int> taskIndexes, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var others = new SortedSet<int>();
            foreach (var i in taskIndexes)
            {
                if (!TryFind(runId, i, out var e))
                {
                    continue;
                }

                if (e.Tasks[i].State == TaskState.Queued)
                {
                    e.Unrelease(i);
                }
                else
                {
                    others.Add(i);
                }
            }

            return Task.FromResult<IReadOnlyList<int>>([.. others]);
        }
    }

    public Task<IReadOnlyList<TaskKey>> ReleaseStuckAsync(DateTimeOffset releasedBefore, DateTimeOffset now, int count, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var stuck = _runs.Values
                .SelectMany(e => e.Released.Where(r => r.Value < releasedBefore && e.Tasks[r.Key].State == TaskState.Queued).Select(r => (e, Index: r.Key, At: r.Value)))
                .OrderBy(s => s.At).Take(count).ToList();
            foreach (var (e, index, _) in stuck)
            {
                e.Release(index, now);
            }

            return Task.FromResult<IReadOnlyList<TaskKey>>([.. stuck.Select(s => new TaskKey(s.e.Run.RunId, s.Index)).OrderBy(k => k.RunId, StringComparer.Ordinal).ThenBy(k => k.Index)]);
        }
    }

    public Task<int> HoldPendingAsync(TenantId tenant, TaskHold hold, CancellationToken cancellationToken) =>
        Task.FromResult(RewritePending(tenant, t => t.Hold is null, t => t with { Hold = hold }));

    public Task<int> ClearPendingHoldAsync(TenantId tenant, string reason, CancellationToken cancellationToken) =>
        Task.FromResult(RewritePending(tenant, t => t.Hold?.Reason == reason, t => t with { Hold = null }));

    /// <summary>Rewrites the tenant's pending tasks that <paramref name="which"/> picks (of every run: PostgreSQL's set-based update does not look at runs); returns how many.</summary>
    private int RewritePending(TenantId tenant, Func<TaskRecord, bool> which, Func<TaskRecord, TaskRecord> rewrite)
    {
        lock (_lock)
        {
            var n = 0;
            foreach (var e in _runs.Values.Where(e => e.Run.Tenant == tenant && e.Pending > 0))
            {
                foreach (var i in e.PendingIndexes().Where(i => which(e.Tasks[i])).ToList())
                {
                    e.Set(i, rewrite(e.Tasks[i]));
                    n++;
                }
            }

            return n;
        }
    }

    public Task<(int Ended, int Remaining)> CancelPendingAsync(string runId, TaskOutcome outcome, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var e = _runs.GetValueOrDefault(runId) ?? throw new UnknownRunException(runId);
            var ended = 0;
            if (e.Run.StopReason is not null)
            {
                foreach (var i in e.PendingIndexes().ToList())
                {
                    e.Set(i, e.Tasks[i] with { State = outcome.State, ExitCode = outcome.ExitCode, Error = outcome.Error, FinishedAt = outcome.FinishedAt, Hold = null });
                    ended++;
                }

                e.Run = e.Run with { Remaining = e.Run.Remaining - ended };
            }

            return Task.FromResult((ended, e.Run.Remaining));
        }
    }

    public Task<IReadOnlyDictionary<TenantId, TenantUse>> ReadTenantUsageAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyDictionary<TenantId, TenantUse>>(new Dictionary<TenantId, TenantUse>(_usage));
        }
    }

    public Task WriteTenantUsageAsync(IReadOnlyDictionary<TenantId, TenantUse> uses, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            foreach (var (tenant, use) in uses)
            {
                _usage[tenant] = use;
            }
        }

        return Task.CompletedTask;
    }

    private bool TryFind(string runId, int index, out Entry e) =>
        _runs.TryGetValue(runId, out e!) && index >= 0 && index < e.Tasks.Count;

    private Entry Find(string runId) => _runs.GetValueOrDefault(runId) ?? throw new UnknownRunException(runId);

    private Entry Find(string runId, int index)
    {
        var e = Find(runId);
        return index >= 0 && index < e.Tasks.Count ? e : throw new UnknownRunException(runId, index);
    }
}
