using System.Text.Json;
using Microsoft.Win32.SafeHandles;

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
internal sealed class InMemoryRunStore(string? spillDirectory = null) : IRunStore, IDisposable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Entry> _runs = new(StringComparer.Ordinal);
    private SafeFileHandle? _spill;
    private long _spillLength;
    private bool _disposed;

    /// <summary>Where one provenance row is in the spill file, with what orders it.</summary>
    private readonly record struct RowAt(int Index, int StepRank, int Attempt, long Offset, int Length);

    /// <summary>A run with its tasks (a task's index is its position) and where its provenance rows are.</summary>
    private sealed class Entry(RunRecord run, List<TaskRecord> tasks)
    {
        public RunRecord Run { get; set; } = run;

        public List<TaskRecord> Tasks { get; } = tasks;

        public List<RowAt> Provenance { get; } = [];

        public string? GatherJob { get; set; }
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
            var t = _runs.GetValueOrDefault(runId)?.Tasks ?? [];
            int C(TaskState s) => t.Count(x => x.State == s);
            var held = t.Where(x => x.State == TaskState.Queued && x.Hold is not null).GroupBy(x => x.Hold!.Reason).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
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

            e.Tasks[index] = task with { State = TaskState.Running, Worker = worker, StartedAt = now, LeaseUntil = leaseUntil, Hold = null };
            return Task.FromResult<int?>(task.Attempts);
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
            e.Tasks[index] = task with { Hold = hold with { Since = task.Hold?.Since ?? hold.Since } };
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

            e.Tasks[index] = task with { LeaseUntil = leaseUntil };
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
            e.Tasks.AddRange(children.Select((c, i) => new TaskRecord(runId, first + i, c.TaskId, TaskState.Queued, c.Inputs, c.Captures, 0, null, null, null, null, null) { ParentIndex = index }));
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
            at[i] = new RowAt(index, ranks[i], rows[i].Attempt, Append(json[i]), json[i].Length);
        }

        e.Tasks[index] = task with
        {
            State = state,
            ExitCode = outcome.ExitCode,
            Error = outcome.Error,
            FinishedAt = outcome.FinishedAt,
            Attempts = rows.Count == 0 ? 0 : rows.Max(r => r.Attempt),
            Hold = null,
        };
        e.Provenance.AddRange(at);
        return true;
    }

    private static byte[][] Serialise(IReadOnlyList<ProvenanceRow> rows)
    {
        var json = new byte[rows.Count][];
        for (var i = 0; i < rows.Count; i++)
        {
            json[i] = JsonSerializer.SerializeToUtf8Bytes(rows[i]);
        }

        return json;
    }

    /// <summary>Appends one row to the spill file (under the lock) and returns where it starts.</summary>
    private long Append(byte[] json)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_spill is null)
        {
            var dir = spillDirectory ?? Path.GetTempPath();
            var path = Path.Combine(dir, $"pipelines-provenance-{Environment.ProcessId}-{Guid.NewGuid():N}");
            _spill = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
            File.Delete(path);
        }

        var at = _spillLength;
        RandomAccess.Write(_spill, json, at);
        _spillLength += json.Length;
        return at;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _spill?.Dispose();
        }
    }

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
        SafeFileHandle? spill;
        lock (_lock)
        {
            at = (_runs.GetValueOrDefault(runId)?.Provenance ?? []).Where(p => taskIndexes is null || taskIndexes.Contains(p.Index))
                .OrderBy(p => p.Index).ThenBy(p => p.StepRank).ThenBy(p => p.Attempt).ToArray();
            spill = _spill;
        }

        // Read outside the lock: written rows never change, and positional reads of one handle
        // may run beside the appends of commits.
        var buffer = new byte[4096];
        foreach (var p in at)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (buffer.Length < p.Length)
            {
                buffer = new byte[Math.Max(p.Length, buffer.Length * 2)];
            }

            for (var read = 0; read < p.Length;)
            {
                var n = RandomAccess.Read(spill!, buffer.AsSpan(read, p.Length - read), p.Offset + read);
                read += n > 0 ? n : throw new IOException($"the provenance spill file ended at {p.Offset + read} bytes, before a row of {p.Length} bytes at {p.Offset}");
            }

            yield return JsonSerializer.Deserialize<ProvenanceRow>(buffer.AsSpan(0, p.Length)) ?? throw new InvalidDataException($"run {runId}: a provenance row of task {p.Index} read back as null");
        }
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
