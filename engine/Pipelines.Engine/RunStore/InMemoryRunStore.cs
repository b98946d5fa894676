namespace Pipelines.RunStore;

/// <summary>
/// The run store of the embedded mode (no PostgreSQL configured): one process, kept in memory
/// with the same conditional semantics as <see cref="PostgresRunStore"/>. What a user keeps of
/// a run (run.json, provenance, results) is written to the output location either way.
/// </summary>
public sealed class InMemoryRunStore : IRunStore
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, RunRecord> _runs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskRecord[]> _tasks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<(int Index, ProvenanceRow Row)>> _provenance = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _gatherJobs = new(StringComparer.Ordinal);

    public Task InitializeAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task CreateRunAsync(RunRecord run, IReadOnlyList<TaskRecord> tasks, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_runs.TryAdd(run.RunId, run))
            {
                throw new InvalidOperationException($"run {run.RunId} exists already");
            }

            _tasks[run.RunId] = tasks.OrderBy(t => t.Index).ToArray();
            _provenance[run.RunId] = [];
        }

        return Task.CompletedTask;
    }

    public async Task<int> CreateRunAsync(RunRecord run, IAsyncEnumerable<TaskRecord> tasks, CancellationToken cancellationToken)
    {
        var list = new List<TaskRecord>();
        await foreach (var t in tasks.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            list.Add(t);
        }

        if (list.Count > 0)
        {
            await CreateRunAsync(run with { TaskCount = list.Count, Remaining = list.Count }, list, cancellationToken).ConfigureAwait(false);
        }

        return list.Count;
    }

    public Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_runs.GetValueOrDefault(runId));
        }
    }

    public Task<IReadOnlyList<RunRecord>> ListRunsAsync(int limit, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<RunRecord>>(_runs.Values.OrderByDescending(r => r.CreatedAt).Take(limit).ToList());
        }
    }

    public Task<Page<RunRecord>> QueryRunsAsync(RunQuery query, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var matching = _runs.Values
                .Where(r => (query.Workflow is null || r.WorkflowName == query.Workflow) && (query.State is null || r.State == query.State))
                .OrderByDescending(r => r.CreatedAt)
                .ToList();
            return Task.FromResult(new Page<RunRecord>(matching.Skip(query.Offset).Take(query.Limit).ToList(), matching.Count));
        }
    }

    public Task<Page<TaskRecord>> QueryTasksAsync(string runId, TaskQuery query, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var matching = (_tasks.GetValueOrDefault(runId) ?? []).Where(t => query.State is null || t.State == query.State).ToList();
            return Task.FromResult(new Page<TaskRecord>(matching.Skip(query.Offset).Take(query.Limit).ToList(), matching.Count));
        }
    }

    public Task<TaskRecord?> GetTaskAsync(string runId, int index, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_tasks.TryGetValue(runId, out var t) && index >= 0 && index < t.Length ? t[index] : null);
        }
    }

    public Task<IReadOnlyList<TaskRecord>> GetTasksAsync(string runId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<TaskRecord>>(_tasks.TryGetValue(runId, out var t) ? t.ToList() : []);
        }
    }

    public Task<TaskCounts> CountTasksAsync(string runId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var t = _tasks.GetValueOrDefault(runId) ?? [];
            int C(TaskState s) => t.Count(x => x.State == s);
            return Task.FromResult(new TaskCounts(C(TaskState.Queued), C(TaskState.Running), C(TaskState.Succeeded), C(TaskState.Failed), C(TaskState.Cached), C(TaskState.Cancelled)) { Split = C(TaskState.Split) });
        }
    }

    public Task<int?> ClaimTaskAsync(string runId, int index, string worker, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var run = _runs[runId];
            var task = _tasks[runId][index];
            var claimable = task.State == TaskState.Queued || (task.State == TaskState.Running && (task.LeaseUntil is null || task.LeaseUntil <= now));
            if (!claimable || run.StopReason is not null || run.State != RunState.Running)
            {
                return Task.FromResult<int?>(null);
            }

            _tasks[runId][index] = task with { State = TaskState.Running, Worker = worker, StartedAt = now, LeaseUntil = leaseUntil };
            return Task.FromResult<int?>(task.Attempts);
        }
    }

    public Task<bool> RenewLeaseAsync(string runId, int index, string worker, DateTimeOffset startedAt, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var task = _tasks[runId][index];
            if (task.State != TaskState.Running || !string.Equals(task.Worker, worker, StringComparison.Ordinal) || task.StartedAt != startedAt)
            {
                return Task.FromResult(false);
            }

            _tasks[runId][index] = task with { LeaseUntil = leaseUntil };
            return Task.FromResult(true);
        }
    }

    public Task<(bool Committed, int Remaining)> CommitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var run = _runs[runId];
            if (!EndTask(runId, index, outcome.State, outcome, rows))
            {
                return Task.FromResult((false, run.Remaining));
            }

            run = run with { Remaining = run.Remaining - 1 };
            _runs[runId] = run;
            return Task.FromResult((true, run.Remaining));
        }
    }

    public Task<(bool Committed, IReadOnlyList<int> Children, int Remaining)> SplitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, IReadOnlyList<TaskRecord> children, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var tasks = _tasks[runId];
            var run = _runs[runId];
            if (!EndTask(runId, index, TaskState.Split, outcome, rows))
            {
                return Task.FromResult<(bool, IReadOnlyList<int>, int)>((false, [], run.Remaining));
            }

            var added = children.Select((c, i) => c with { RunId = runId, Index = tasks.Length + i, State = TaskState.Queued, ParentIndex = index }).ToArray();
            _tasks[runId] = [.. tasks, .. added];
            run = run with { TaskCount = run.TaskCount + added.Length, Remaining = run.Remaining - 1 + added.Length };
            _runs[runId] = run;
            return Task.FromResult<(bool, IReadOnlyList<int>, int)>((true, added.Select(a => a.Index).ToList(), run.Remaining));
        }
    }

    /// <summary>Ends a task that has not ended yet, with its provenance rows (under the lock); false when it had ended.</summary>
    private bool EndTask(string runId, int index, TaskState state, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows)
    {
        var task = _tasks[runId][index];
        if (task.State is not (TaskState.Queued or TaskState.Running))
        {
            return false;
        }

        _tasks[runId][index] = task with
        {
            State = state,
            ExitCode = outcome.ExitCode,
            Error = outcome.Error,
            FinishedAt = outcome.FinishedAt,
            Attempts = rows.Count == 0 ? 0 : rows.Max(r => r.Attempt),
        };
        _provenance[runId].AddRange(rows.Select(r => (index, r)));
        return true;
    }

    public Task RequestStopAsync(string runId, string reason, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var run = _runs[runId];
            if (run.StopReason is null)
            {
                _runs[runId] = run with { StopReason = reason };
            }
        }

        return Task.CompletedTask;
    }

    public Task<bool> TryBeginGatherAsync(string runId, string gatherJobId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var run = _runs[runId];
            var mine = run.State == RunState.Gathering && _gatherJobs.GetValueOrDefault(runId) == gatherJobId;
            if (run.Remaining != 0 || !(run.State == RunState.Running || mine))
            {
                return Task.FromResult(false);
            }

            _runs[runId] = run with { State = RunState.Gathering };
            _gatherJobs[runId] = gatherJobId;
            return Task.FromResult(true);
        }
    }

    public Task FinishRunAsync(string runId, RunState state, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var run = _runs[runId];
            if (!run.State.IsTerminal())
            {
                _runs[runId] = run with { State = state, Error = error, FinishedAt = now };
            }
        }

        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<ProvenanceRow>> GetProvenanceAsync(string runId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<ProvenanceRow>>(_provenance[runId].OrderBy(p => p.Index).ThenBy(p => p.Row.Attempt).ThenBy(p => p.Row.Step, StringComparer.Ordinal).Select(p => p.Row).ToList());
        }
    }
}
