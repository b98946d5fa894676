using System.Runtime.CompilerServices;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Pipelines.Planning;
using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.RunStore;

/// <summary>The run store in PostgreSQL, in its own schema beside Hangfire's.</summary>
internal sealed class PostgresRunStore : IRunStore
{
    private const string TaskColumns = "run_id, task_index, task_id, state, inputs, captures, attempts, exit_code, error, worker, started_at, finished_at, parent_index, lease_until, held_reason, held_detail, held_by, held_at";
    private const string RunColumns = "run_id, workflow_name, workflow_yaml, definition, output_uri, state, task_count, remaining, created_at, finished_at, stop_reason, error, tenant, submitted_by";

    private readonly SchemaGate _db;

    /// <summary>The release of the rows a CTE <c>picked</c> chose: stamped, and a hold by quota lifted (the one statement of both releases).</summary>
    private string ReleasePicked => $"""
        UPDATE {S}.tasks t SET released_at = @now,
            held_reason = NULLIF(t.held_reason, @quota),
            held_detail = CASE WHEN t.held_reason = @quota THEN NULL ELSE t.held_detail END,
            held_by = CASE WHEN t.held_reason = @quota THEN NULL ELSE t.held_by END,
            held_at = CASE WHEN t.held_reason = @quota THEN NULL ELSE t.held_at END
        FROM picked
        WHERE t.run_id = picked.run_id AND t.task_index = picked.task_index
        RETURNING t.run_id, t.task_index
        """;

    /// <summary>The store over the tables in <paramref name="schema"/>; the data source is the gate's alone.</summary>
    public PostgresRunStore(NpgsqlDataSource dataSource, string schema = "pipelines") => _db = new SchemaGate(dataSource, schema, Tables);

    private string S => _db.Schema;

    /// <summary>Runs, tasks and provenance; made by Hosting/PostgresSchema.</summary>
    public static SchemaPart Tables { get; } = new("run store", 4, s => $"""
            CREATE TABLE IF NOT EXISTS {s}.runs (
                run_id text PRIMARY KEY,
                workflow_name text NOT NULL,
                workflow_yaml text NOT NULL,
                definition jsonb NOT NULL,
                output_uri text NOT NULL,
                state text NOT NULL,
                task_count int NOT NULL,
                remaining int NOT NULL,
                created_at timestamptz NOT NULL,
                finished_at timestamptz,
                stop_reason text,
                gather_job text,
                error text);
            CREATE TABLE IF NOT EXISTS {s}.tasks (
                run_id text NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
                task_index int NOT NULL,
                task_id text NOT NULL,
                state text NOT NULL,
                inputs jsonb NOT NULL,
                captures jsonb NOT NULL,
                attempts int NOT NULL DEFAULT 0,
                exit_code bigint,
                error text,
                worker text,
                started_at timestamptz,
                finished_at timestamptz,
                PRIMARY KEY (run_id, task_index));
            CREATE TABLE IF NOT EXISTS {s}.provenance (
                run_id text NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
                task_index int NOT NULL,
                attempt int NOT NULL,
                step text NOT NULL,
                row jsonb NOT NULL,
                PRIMARY KEY (run_id, task_index, attempt, step));
            CREATE INDEX IF NOT EXISTS runs_created ON {s}.runs (created_at DESC);
            ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS parent_index int;
            ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS lease_until timestamptz;
            ALTER TABLE {s}.provenance ADD COLUMN IF NOT EXISTS step_rank int;
            ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS held_reason text;
            ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS held_detail text;
            ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS held_by text;
            ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS held_at timestamptz;
            -- v3, tenants (docs/tenants.md): the owner on runs and, for a per-tenant queue, on tasks.
            -- A constant default adds the column without rewriting the table; rows from before are the default tenant's.
            ALTER TABLE {s}.runs ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
            ALTER TABLE {s}.runs ADD COLUMN IF NOT EXISTS submitted_by text;
            ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
            CREATE INDEX IF NOT EXISTS runs_tenant_created ON {s}.runs (tenant, created_at DESC);
            -- v4, the dispatcher (docs/tenants.md, Fair share): a queued task is pending (released_at NULL) until the
            -- dispatcher releases it into Hangfire's queue. Rows from before had their jobs enqueued at submission: the
            -- constant default (no table rewrite) marks them released at -infinity, which a re-release of stuck tasks
            -- passes over; rows made after start pending. The indexes keep a tick's reads to pending and in-flight rows.
            ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS released_at timestamptz DEFAULT '-infinity';
            ALTER TABLE {s}.tasks ALTER COLUMN released_at DROP DEFAULT;
            CREATE INDEX IF NOT EXISTS tasks_pending ON {s}.tasks (tenant, run_id COLLATE "C", task_index) WHERE state = 'queued' AND released_at IS NULL;
            CREATE INDEX IF NOT EXISTS tasks_in_flight ON {s}.tasks (tenant, released_at) WHERE state = 'running' OR (state = 'queued' AND released_at IS NOT NULL);
            CREATE TABLE IF NOT EXISTS {s}.tenant_usage (
                tenant text PRIMARY KEY,
                decayed double precision NOT NULL,
                updated_at timestamptz NOT NULL);
        """);

    public async Task CreateRunAsync(RunRecord run, IReadOnlyList<TaskRecord> tasks, CancellationToken cancellationToken)
    {
        if (tasks.Count == 0)
        {
            throw new ArgumentException($"run {run.RunId}: a run needs at least one task", nameof(tasks));
        }

        await CreateRunAsync(run, Stream(tasks), cancellationToken).ConfigureAwait(false);
    }

    public async Task<int> CreateRunAsync(RunRecord run, IAsyncEnumerable<TaskRecord> tasks, CancellationToken cancellationToken)
    {
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var cmd = new NpgsqlCommand($"INSERT INTO {S}.runs ({RunColumns}) VALUES (@id, @name, @yaml, @def, @out, @state, 0, 0, @created, NULL, NULL, NULL, @tenant, @by)", conn, tx))
        {
            cmd.Parameters.AddWithValue("id", run.RunId);
            cmd.Parameters.AddWithValue("name", run.WorkflowName);
            cmd.Parameters.AddWithValue("yaml", run.WorkflowYaml);
            cmd.Parameters.AddWithValue("def", NpgsqlDbType.Jsonb, run.DefinitionJson);
            cmd.Parameters.AddWithValue("out", run.OutputUri);
            cmd.Parameters.AddWithValue("state", run.State.Name());
            cmd.Parameters.AddWithValue("created", run.CreatedAt);
            cmd.Parameters.AddWithValue("tenant", run.Tenant.Value);
            cmd.Parameters.AddWithValue("by", NpgsqlDbType.Text, (object?)run.SubmittedBy ?? DBNull.Value);
            try
            {
                await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                // The run row is the only row of this statement: its primary key is the run id.
                throw new DuplicateRunException(run.RunId, e);
            }
        }

        // Binary COPY as the plan streams: one round trip for all tasks, never one per file.
        var count = 0;
        await using (var copy = await conn.BeginBinaryImportAsync($"COPY {S}.tasks (run_id, task_index, task_id, state, inputs, captures, tenant) FROM STDIN (FORMAT BINARY)", cancellationToken).ConfigureAwait(false))
        {
            await foreach (var t in tasks.WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                // A refused task ends the COPY uncompleted, which rolls the whole run back.
                RunStoreRules.CheckCreated(run, t, count);
                await copy.StartRowAsync(cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(t.RunId, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(t.Index, NpgsqlDbType.Integer, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(t.TaskId, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(t.State.Name(), NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(JsonSerializer.Serialize(t.Inputs, RunStoreJson.Default.IReadOnlyListInputFile), NpgsqlDbType.Jsonb, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(JsonSerializer.Serialize(t.Captures, RunStoreJson.Default.IReadOnlyDictionaryStringString), NpgsqlDbType.Jsonb, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(run.Tenant.Value, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                count++;
            }

            await copy.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }

        if (count == 0)
        {
            await tx.RollbackAsync(cancellationToken).ConfigureAwait(false);
            return 0;
        }

        await using (var cmd = new NpgsqlCommand($"UPDATE {S}.runs SET task_count = @n, remaining = @n WHERE run_id = @id", conn, tx))
        {
            cmd.Parameters.AddWithValue("id", run.RunId);
            cmd.Parameters.AddWithValue("n", count);
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return count;
    }

    private static async IAsyncEnumerable<TaskRecord> Stream(IReadOnlyList<TaskRecord> tasks)
    {
        foreach (var t in tasks)
        {
            yield return t;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    public async Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken)
    {
        var list = await QueryRunsAsync($"SELECT {RunColumns} FROM {S}.runs WHERE run_id = @id", p => p.AddWithValue("id", runId), cancellationToken).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    public async Task<Page<RunRecord>> QueryRunsAsync(RunQuery query, CancellationToken cancellationToken)
    {
        // RunQuery.Matches, in SQL (the run store contract holds both to one behaviour).
        const string where = "WHERE (@wf::text IS NULL OR workflow_name = @wf) AND (@state::text IS NULL OR state = @state) AND (@since::timestamptz IS NULL OR created_at >= @since) AND (@tenant::text IS NULL OR tenant = @tenant)";
        void Bind(NpgsqlParameterCollection p)
        {
            p.AddWithValue("wf", NpgsqlDbType.Text, (object?)query.Workflow ?? DBNull.Value);
            p.AddWithValue("state", NpgsqlDbType.Text, (object?)query.State?.Name() ?? DBNull.Value);
            p.AddWithValue("since", NpgsqlDbType.TimestampTz, (object?)query.Since ?? DBNull.Value);
            p.AddWithValue("tenant", NpgsqlDbType.Text, (object?)query.Tenant?.Value ?? DBNull.Value);
            p.AddWithValue("offset", query.Offset);
            p.AddWithValue("limit", query.Limit);
        }

        var items = await QueryRunsAsync($"SELECT {RunColumns} FROM {S}.runs {where} ORDER BY created_at DESC, run_id COLLATE \"C\" OFFSET @offset LIMIT @limit", Bind, cancellationToken).ConfigureAwait(false);
        await using var count = await _db.CommandAsync($"SELECT count(*) FROM {S}.runs {where}", cancellationToken).ConfigureAwait(false);
        Bind(count.Parameters);
        var total = (long)(await count.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        return new Page<RunRecord>(items, (int)total);
    }

    public async Task<Page<TaskRecord>> QueryTasksAsync(string runId, TaskQuery query, CancellationToken cancellationToken)
    {
        const string where = "WHERE run_id = @id AND (@state::text IS NULL OR state = @state)";
        void Bind(NpgsqlParameterCollection p)
        {
            p.AddWithValue("id", runId);
            p.AddWithValue("state", NpgsqlDbType.Text, (object?)query.State?.Name() ?? DBNull.Value);
            p.AddWithValue("offset", query.Offset);
            p.AddWithValue("limit", query.Limit);
        }

        var items = await QueryTasksAsync($"SELECT {TaskColumns} FROM {S}.tasks {where} ORDER BY task_index OFFSET @offset LIMIT @limit", Bind, cancellationToken).ConfigureAwait(false);
        await using var count = await _db.CommandAsync($"SELECT count(*) FROM {S}.tasks {where}", cancellationToken).ConfigureAwait(false);
        Bind(count.Parameters);
        var total = (long)(await count.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        return new Page<TaskRecord>(items, (int)total);
    }

    public async Task<TaskRecord?> GetTaskAsync(string runId, int index, CancellationToken cancellationToken)
    {
        var list = await QueryTasksAsync($"SELECT {TaskColumns} FROM {S}.tasks WHERE run_id = @id AND task_index = @i", p =>
        {
            p.AddWithValue("id", runId);
            p.AddWithValue("i", index);
        }, cancellationToken).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    public async Task<IReadOnlyList<TaskRecord>> GetTasksAsync(string runId, CancellationToken cancellationToken)
    {
        return await QueryTasksAsync($"SELECT {TaskColumns} FROM {S}.tasks WHERE run_id = @id ORDER BY task_index", p => p.AddWithValue("id", runId), cancellationToken).ConfigureAwait(false);
    }

    public async Task<TaskCounts> CountTasksAsync(string runId, CancellationToken cancellationToken)
    {
        // A hold counts only while the task is queued (a claim clears it; an end leaves it behind, unread).
        await using var cmd = await _db.CommandAsync($"SELECT state, CASE WHEN state = 'queued' THEN held_reason END, count(*) FROM {S}.tasks WHERE run_id = @id GROUP BY 1, 2", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        var counts = new Dictionary<TaskState, int>();
        var held = new Dictionary<string, int>(StringComparer.Ordinal);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var state = States.ParseTask(r.GetString(0));
            var n = (int)r.GetInt64(2);
            counts[state] = counts.GetValueOrDefault(state) + n;
            if (!r.IsDBNull(1))
            {
                held[r.GetString(1)] = n;
            }
        }

        int C(TaskState s) => counts.GetValueOrDefault(s);
        return new TaskCounts(C(TaskState.Queued), C(TaskState.Running), C(TaskState.Succeeded), C(TaskState.Failed), C(TaskState.Cached), C(TaskState.Cancelled)) { Split = C(TaskState.Split), HeldBecause = held };
    }

    public async Task<int?> ClaimTaskAsync(string runId, int index, string worker, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        // A running task without a lease was claimed before leases existed: it counts as expired.
        // A running task's last delivery ended without recording its end (its worker was lost, or
        // it ended without a commit): the claim records it vacated, in this statement, from the
        // task's row (TaskUsage.Lost is the same rule in C#), unless a record of it (by its claim's
        // time) is there; the deliveries before this one are the task's records then.
        await using var cmd = await _db.CommandAsync($"""
            WITH prev AS (
                SELECT t.state, t.worker, t.started_at, t.lease_until, r.tenant
                FROM {S}.tasks t JOIN {S}.runs r ON r.run_id = t.run_id
                WHERE t.run_id = @id AND t.task_index = @i
                  AND (t.state = 'queued' OR (t.state = 'running' AND (t.lease_until IS NULL OR t.lease_until <= @now)))
                  AND r.stop_reason IS NULL AND r.state = 'running'
                FOR UPDATE OF t),
            known AS (
                SELECT count(*) AS n, coalesce(bool_or(u.started_at = p.started_at), false) AS recorded
                FROM {S}.usage u, prev p WHERE u.run_id = @id AND u.task_index = @i),
            lost AS (
                INSERT INTO {S}.usage (id, tenant, kind, run_id, task_index, delivery, worker, started_at, ended_at, wall_seconds, outcome, reason)
                SELECT @id || '/' || @i || '/' || (k.n + 1), p.tenant, 'task', @id, @i, k.n + 1, p.worker, p.started_at, e.ended,
                       round(extract(epoch FROM e.ended - p.started_at), 3)::float8, 'vacated', @lost
                FROM prev p CROSS JOIN known k
                CROSS JOIN LATERAL (SELECT LEAST(@now, GREATEST(p.started_at, coalesce(p.lease_until - (@until - @now), p.started_at))) AS ended) e
                WHERE p.state = 'running' AND p.started_at IS NOT NULL AND NOT k.recorded
                ON CONFLICT (id) DO NOTHING
                RETURNING 1),
            claimed AS (
                UPDATE {S}.tasks t SET state = 'running', worker = @w, started_at = @now, lease_until = @until,
                    held_reason = NULL, held_detail = NULL, held_by = NULL, held_at = NULL
                FROM prev
                WHERE t.run_id = @id AND t.task_index = @i
                RETURNING 1)
            SELECT ((SELECT n FROM known) + (SELECT count(*) FROM lost))::int FROM claimed
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        cmd.Parameters.AddWithValue("i", index);
        cmd.Parameters.AddWithValue("w", worker);
        cmd.Parameters.AddWithValue("now", now);
        cmd.Parameters.AddWithValue("until", leaseUntil);
        cmd.Parameters.AddWithValue("lost", UsageOutcomes.WorkerLost);
        var result = await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return result is int deliveries ? deliveries : null;
    }

    public async Task<bool> HoldTaskAsync(string runId, int index, TaskHold hold, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            UPDATE {S}.tasks SET held_reason = @reason, held_detail = @detail, held_by = @by, held_at = COALESCE(held_at, @since)
            WHERE run_id = @id AND task_index = @i AND state = 'queued'
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        cmd.Parameters.AddWithValue("i", index);
        cmd.Parameters.AddWithValue("reason", hold.Reason);
        cmd.Parameters.AddWithValue("detail", hold.Detail);
        cmd.Parameters.AddWithValue("by", hold.Worker);
        cmd.Parameters.AddWithValue("since", hold.Since);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    public async Task<bool> RenewLeaseAsync(string runId, int index, string worker, DateTimeOffset startedAt, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            UPDATE {S}.tasks SET lease_until = @until
            WHERE run_id = @id AND task_index = @i AND state = 'running' AND worker = @w AND started_at = @started
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        cmd.Parameters.AddWithValue("i", index);
        cmd.Parameters.AddWithValue("w", worker);
        cmd.Parameters.AddWithValue("started", startedAt);
        cmd.Parameters.AddWithValue("until", leaseUntil);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    public async Task<(bool Committed, int Remaining)> CommitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, CancellationToken cancellationToken)
    {
        var ranks = RunStoreRules.StepRanks(rows);
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        // The conditional update is the commit point: a second delivery of the same task finds it
        // ended and changes nothing, so no task is ever counted twice.
        var updated = await EndTaskAsync(conn, tx, runId, index, outcome.State, outcome, rows, ranks, cancellationToken).ConfigureAwait(false);
        int remaining;
        if (updated)
        {
            await using var dec = new NpgsqlCommand($"UPDATE {S}.runs SET remaining = remaining - 1 WHERE run_id = @id RETURNING remaining", conn, tx);
            dec.Parameters.AddWithValue("id", runId);
            remaining = (int)(await dec.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }
        else
        {
            remaining = await RemainingOfEndedAsync(conn, tx, runId, index, cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (updated, remaining);
    }

    public async Task<(bool Committed, IReadOnlyList<int> Children, int Remaining)> SplitTaskAsync(string runId, int index, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, IReadOnlyList<TaskRecord> children, CancellationToken cancellationToken)
    {
        var ranks = RunStoreRules.StepRanks(rows);
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (!await EndTaskAsync(conn, tx, runId, index, TaskState.Split, outcome, rows, ranks, cancellationToken).ConfigureAwait(false))
        {
            // A second delivery of a task that was already split (or ended): nothing changes.
            var remainingNow = await RemainingOfEndedAsync(conn, tx, runId, index, cancellationToken).ConfigureAwait(false);
            await tx.RollbackAsync(cancellationToken).ConfigureAwait(false);
            return (false, [], remainingNow);
        }

        // The run's row is locked after the task's, in the order a commit locks them (so that a
        // commit and a split of one task cannot deadlock), and before the children are numbered,
        // so that two splits of one run number their children apart. NO KEY UPDATE, as a commit's
        // update takes: it waits for no one's foreign-key share lock (the provenance rows just
        // written hold one), so two splits do not wait for each other's.
        int taskCount;
        await using (var lockRun = new NpgsqlCommand($"SELECT task_count FROM {S}.runs WHERE run_id = @id FOR NO KEY UPDATE", conn, tx))
        {
            lockRun.Parameters.AddWithValue("id", runId);
            taskCount = (int)(await lockRun.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }

        var indexes = new List<int>();
        foreach (var child in children)
        {
            var childIndex = taskCount + indexes.Count;
            await using var ins = new NpgsqlCommand($"INSERT INTO {S}.tasks (run_id, task_index, task_id, state, inputs, captures, parent_index, tenant) VALUES (@id, @i, @t, 'queued', @in, @cap, @p, (SELECT tenant FROM {S}.runs WHERE run_id = @id))", conn, tx);
            ins.Parameters.AddWithValue("id", runId);
            ins.Parameters.AddWithValue("i", childIndex);
            ins.Parameters.AddWithValue("t", child.TaskId);
            ins.Parameters.AddWithValue("in", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(child.Inputs, RunStoreJson.Default.IReadOnlyListInputFile));
            ins.Parameters.AddWithValue("cap", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(child.Captures, RunStoreJson.Default.IReadOnlyDictionaryStringString));
            ins.Parameters.AddWithValue("p", index);
            await ins.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            indexes.Add(childIndex);
        }

        int remaining;
        await using (var upd = new NpgsqlCommand($"UPDATE {S}.runs SET task_count = task_count + @n, remaining = remaining - 1 + @n WHERE run_id = @id RETURNING remaining", conn, tx))
        {
            upd.Parameters.AddWithValue("id", runId);
            upd.Parameters.AddWithValue("n", children.Count);
            remaining = (int)(await upd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (true, indexes, remaining);
    }

    /// <summary>
    /// Ends a task that has not ended yet, with its provenance rows, inside the caller's
    /// transaction; false (and nothing written) when it had ended already.
    /// </summary>
    private async Task<bool> EndTaskAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string runId, int index, TaskState state, TaskOutcome outcome, IReadOnlyList<ProvenanceRow> rows, int[] ranks, CancellationToken ct)
    {
        await using (var cmd = new NpgsqlCommand($"""
            UPDATE {S}.tasks SET state = @s, exit_code = @e, error = @err, finished_at = @f, attempts = @a
            WHERE run_id = @id AND task_index = @i AND state IN ('queued', 'running')
            """, conn, tx))
        {
            cmd.Parameters.AddWithValue("s", state.Name());
            cmd.Parameters.AddWithValue("e", (object?)outcome.ExitCode ?? DBNull.Value);
            cmd.Parameters.AddWithValue("err", (object?)outcome.Error ?? DBNull.Value);
            cmd.Parameters.AddWithValue("f", outcome.FinishedAt);
            cmd.Parameters.AddWithValue("a", rows.Count == 0 ? 0 : rows.Max(r => r.Attempt));
            cmd.Parameters.AddWithValue("id", runId);
            cmd.Parameters.AddWithValue("i", index);
            if (await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 0)
            {
                return false;
            }
        }

        for (var n = 0; n < rows.Count; n++)
        {
            var row = rows[n];
            await using var ins = new NpgsqlCommand($"INSERT INTO {S}.provenance (run_id, task_index, attempt, step, step_rank, row) VALUES (@id, @i, @a, @s, @rank, @row)", conn, tx);
            ins.Parameters.AddWithValue("id", runId);
            ins.Parameters.AddWithValue("i", index);
            ins.Parameters.AddWithValue("a", row.Attempt);
            ins.Parameters.AddWithValue("s", row.Step);
            ins.Parameters.AddWithValue("rank", ranks[n]);
            ins.Parameters.AddWithValue("row", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(row, RunStoreJson.Default.ProvenanceRow));
            await ins.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        if (outcome.Usage is { } usage)
        {
            await PostgresUsageStore.InsertAsync(conn, tx, S, usage, ct).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>
    /// The remaining tasks of a run whose task <paramref name="index"/> had ended already;
    /// <see cref="UnknownRunException"/> when the run or the task does not exist.
    /// </summary>
    private async Task<int> RemainingOfEndedAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string runId, int index, CancellationToken ct)
    {
        await using var get = new NpgsqlCommand($"SELECT r.remaining, EXISTS (SELECT 1 FROM {S}.tasks t WHERE t.run_id = r.run_id AND t.task_index = @i) FROM {S}.runs r WHERE r.run_id = @id", conn, tx);
        get.Parameters.AddWithValue("id", runId);
        get.Parameters.AddWithValue("i", index);
        await using var r = await get.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await r.ReadAsync(ct).ConfigureAwait(false))
        {
            throw new UnknownRunException(runId);
        }

        return r.GetBoolean(1) ? r.GetInt32(0) : throw new UnknownRunException(runId, index);
    }

    /// <summary>Throws <see cref="UnknownRunException"/> when a conditional update of a run changed nothing because the run does not exist.</summary>
    private async Task CheckRunExistsAsync(string runId, CancellationToken ct)
    {
        await using var cmd = await _db.CommandAsync($"SELECT 1 FROM {S}.runs WHERE run_id = @id", ct).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        if (await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is null)
        {
            throw new UnknownRunException(runId);
        }
    }

    public async Task RequestStopAsync(string runId, string reason, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"UPDATE {S}.runs SET stop_reason = @r WHERE run_id = @id AND stop_reason IS NULL", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        cmd.Parameters.AddWithValue("r", reason);
        if (await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
        {
            await CheckRunExistsAsync(runId, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<bool> TryBeginGatherAsync(string runId, string gatherJobId, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            UPDATE {S}.runs SET state = 'gathering', gather_job = @job
            WHERE run_id = @id AND remaining = 0
              AND (state = 'running' OR (state = 'gathering' AND gather_job = @job))
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        cmd.Parameters.AddWithValue("job", gatherJobId);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    public async Task FinishRunAsync(string runId, RunState state, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"UPDATE {S}.runs SET state = @s, error = @e, finished_at = @f WHERE run_id = @id AND state NOT IN ('succeeded', 'failed', 'cancelled')", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        cmd.Parameters.AddWithValue("s", state.Name());
        cmd.Parameters.AddWithValue("e", (object?)error ?? DBNull.Value);
        cmd.Parameters.AddWithValue("f", now);
        if (await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
        {
            await CheckRunExistsAsync(runId, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<IReadOnlyList<ProvenanceRow>> GetProvenanceAsync(string runId, CancellationToken cancellationToken) =>
        await ProvenanceOfAsync(runId, null, cancellationToken).ToListAsync(cancellationToken).ConfigureAwait(false);

    public async Task<IReadOnlyList<ProvenanceRow>> GetProvenanceAsync(string runId, IReadOnlyCollection<int> taskIndexes, CancellationToken cancellationToken) =>
        await ProvenanceOfAsync(runId, taskIndexes, cancellationToken).ToListAsync(cancellationToken).ConfigureAwait(false);

    public IAsyncEnumerable<ProvenanceRow> ReadProvenanceAsync(string runId, CancellationToken cancellationToken) => ProvenanceOfAsync(runId, null, cancellationToken);

    /// <summary>
    /// The rows as the reader takes them from the connection: Npgsql reads a result row by row
    /// from the socket, so a run's rows are never all in memory at once (the server waits while
    /// the caller works); the command's connection goes back to the pool when the stream ends.
    /// </summary>
    private async IAsyncEnumerable<ProvenanceRow> ProvenanceOfAsync(string runId, IReadOnlyCollection<int>? taskIndexes, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync(
            $"SELECT row FROM {S}.provenance WHERE run_id = @id{(taskIndexes is null ? "" : " AND task_index = ANY(@tasks)")} ORDER BY task_index, step_rank, attempt, step", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        if (taskIndexes is not null)
        {
            cmd.Parameters.AddWithValue("tasks", taskIndexes.ToArray());
        }

        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return JsonSerializer.Deserialize(r.GetString(0), RunStoreJson.Default.ProvenanceRow)!;
        }
    }

    public async Task<IReadOnlyList<TenantLoad>> TenantLoadsAsync(CancellationToken cancellationToken)
    {
        // Pending counted per run first (an index-only scan), then only runs that may still start tasks.
        await using var cmd = await _db.CommandAsync($"""
            WITH p AS (SELECT tenant, run_id, count(*) AS n FROM {S}.tasks WHERE state = 'queued' AND released_at IS NULL GROUP BY tenant, run_id),
                 pending AS (SELECT p.tenant, sum(p.n) AS n FROM p JOIN {S}.runs r ON r.run_id = p.run_id
                             WHERE r.state = 'running' AND r.stop_reason IS NULL GROUP BY p.tenant),
                 flight AS (SELECT tenant, count(*) AS n FROM {S}.tasks
                            WHERE state = 'running' OR (state = 'queued' AND released_at IS NOT NULL) GROUP BY tenant)
            SELECT coalesce(pending.tenant, flight.tenant), coalesce(pending.n, 0)::int, coalesce(flight.n, 0)::int
            FROM pending FULL JOIN flight ON flight.tenant = pending.tenant
            """, cancellationToken).ConfigureAwait(false);
        var loads = new List<TenantLoad>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            loads.Add(new TenantLoad(Tenant(r.GetString(0)), r.GetInt32(1), r.GetInt32(2)));
        }

        return [.. loads.OrderBy(l => l.Tenant.Value, StringComparer.Ordinal)];
    }

    public async Task<IReadOnlyList<TaskKey>> ReleaseTasksAsync(TenantId tenant, int count, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // The pick is a CTE, run once: as an IN (subquery) the planner may run it again per row,
        // and SKIP LOCKED then finds other rows each time (more than the limit are released).
        await using var cmd = await _db.CommandAsync($"""
            WITH picked AS (
                SELECT p.run_id, p.task_index FROM {S}.tasks p JOIN {S}.runs r ON r.run_id = p.run_id
                WHERE p.tenant = @tenant AND p.state = 'queued' AND p.released_at IS NULL AND r.state = 'running' AND r.stop_reason IS NULL
                ORDER BY p.tenant, p.run_id COLLATE "C", p.task_index
                LIMIT @n FOR UPDATE OF p SKIP LOCKED)
            {ReleasePicked}
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("tenant", tenant.Value);
        cmd.Parameters.AddWithValue("n", count);
        cmd.Parameters.AddWithValue("now", now);
        cmd.Parameters.AddWithValue("quota", HoldReasons.Quota);
        return await KeysAsync(cmd, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TaskKey>> ReleaseOldestAsync(int count, IReadOnlyCollection<TenantId> except, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // As ReleaseTasksAsync, over every tenant: the pending rows are sorted across tenants (the mode of before tenants).
        await using var cmd = await _db.CommandAsync($"""
            WITH picked AS (
                SELECT p.run_id, p.task_index FROM {S}.tasks p JOIN {S}.runs r ON r.run_id = p.run_id
                WHERE p.state = 'queued' AND p.released_at IS NULL AND NOT (p.tenant = ANY(@except)) AND r.state = 'running' AND r.stop_reason IS NULL
                ORDER BY p.run_id COLLATE "C", p.task_index
                LIMIT @n FOR UPDATE OF p SKIP LOCKED)
            {ReleasePicked}
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("except", except.Select(t => t.Value).ToArray());
        cmd.Parameters.AddWithValue("n", count);
        cmd.Parameters.AddWithValue("now", now);
        cmd.Parameters.AddWithValue("quota", HoldReasons.Quota);
        return await KeysAsync(cmd, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TaskKey>> InFlightAsync(IReadOnlyList<TaskKey> keys, CancellationToken cancellationToken)
    {
        if (keys.Count == 0)
        {
            return [];
        }

        await using var cmd = await _db.CommandAsync($"""
            SELECT t.run_id, t.task_index FROM {S}.tasks t
            JOIN unnest(@runs, @indexes) AS k(run_id, task_index) ON t.run_id = k.run_id AND t.task_index = k.task_index
            WHERE t.state = 'running' OR (t.state = 'queued' AND t.released_at IS NOT NULL)
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("runs", keys.Select(k => k.RunId).ToArray());
        cmd.Parameters.AddWithValue("indexes", keys.Select(k => k.Index).ToArray());
        return await KeysAsync(cmd, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<string>> StoppingWithPendingAsync(CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            SELECT DISTINCT t.run_id FROM {S}.tasks t JOIN {S}.runs r ON r.run_id = t.run_id
            WHERE t.state = 'queued' AND t.released_at IS NULL AND r.stop_reason IS NOT NULL
            """, cancellationToken).ConfigureAwait(false);
        var ids = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            ids.Add(r.GetString(0));
        }

        return [.. ids.Order(StringComparer.Ordinal)];
    }

    public async Task<IReadOnlyList<int>> MarkPendingAsync(string runId, IReadOnlyList<int> taskIndexes, CancellationToken cancellationToken)
    {
        // The SELECT reads the tasks as they were before the update, which changes no state.
        await using var cmd = await _db.CommandAsync($"""
            WITH marked AS (
                UPDATE {S}.tasks SET released_at = NULL
                WHERE run_id = @id AND task_index = ANY(@i) AND state = 'queued' AND released_at IS NOT NULL
                RETURNING task_index)
            SELECT task_index FROM {S}.tasks WHERE run_id = @id AND task_index = ANY(@i) AND state <> 'queued' ORDER BY task_index
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        cmd.Parameters.AddWithValue("i", taskIndexes.ToArray());
        var others = new List<int>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            others.Add(r.GetInt32(0));
        }

        return others;
    }

    public async Task<IReadOnlyList<TaskKey>> ReleaseStuckAsync(DateTimeOffset releasedBefore, DateTimeOffset now, int count, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            WITH picked AS (
                SELECT run_id, task_index FROM {S}.tasks
                WHERE state = 'queued' AND released_at IS NOT NULL AND released_at > '-infinity' AND released_at < @before
                ORDER BY released_at LIMIT @n FOR UPDATE SKIP LOCKED)
            UPDATE {S}.tasks t SET released_at = @now
            FROM picked
            WHERE t.run_id = picked.run_id AND t.task_index = picked.task_index
            RETURNING t.run_id, t.task_index
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("before", releasedBefore);
        cmd.Parameters.AddWithValue("now", now);
        cmd.Parameters.AddWithValue("n", count);
        return await KeysAsync(cmd, cancellationToken).ConfigureAwait(false);
    }

    public async Task<int> HoldPendingAsync(TenantId tenant, TaskHold hold, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            UPDATE {S}.tasks SET held_reason = @r, held_detail = @d, held_by = @w, held_at = @at
            WHERE tenant = @tenant AND state = 'queued' AND released_at IS NULL AND held_reason IS NULL
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("tenant", tenant.Value);
        cmd.Parameters.AddWithValue("r", hold.Reason);
        cmd.Parameters.AddWithValue("d", hold.Detail);
        cmd.Parameters.AddWithValue("w", hold.Worker);
        cmd.Parameters.AddWithValue("at", hold.Since);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<int> ClearPendingHoldAsync(TenantId tenant, string reason, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            UPDATE {S}.tasks SET held_reason = NULL, held_detail = NULL, held_by = NULL, held_at = NULL
            WHERE tenant = @tenant AND state = 'queued' AND released_at IS NULL AND held_reason = @r
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("tenant", tenant.Value);
        cmd.Parameters.AddWithValue("r", reason);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<(int Ended, int Remaining)> CancelPendingAsync(string runId, TaskOutcome outcome, CancellationToken cancellationToken)
    {
        // One statement: the tasks (locked first, as a commit locks them) and then the run's count.
        await using var cmd = await _db.CommandAsync($"""
            WITH ended AS (
                UPDATE {S}.tasks t SET state = @s, exit_code = @e, error = @err, finished_at = @f
                FROM {S}.runs r
                WHERE t.run_id = @id AND r.run_id = t.run_id AND r.stop_reason IS NOT NULL
                  AND t.state = 'queued' AND t.released_at IS NULL
                RETURNING 1)
            UPDATE {S}.runs SET remaining = remaining - (SELECT count(*) FROM ended)
            WHERE run_id = @id
            RETURNING (SELECT count(*) FROM ended)::int, remaining
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("id", runId);
        cmd.Parameters.AddWithValue("s", outcome.State.Name());
        cmd.Parameters.AddWithValue("e", NpgsqlDbType.Bigint, (object?)outcome.ExitCode ?? DBNull.Value);
        cmd.Parameters.AddWithValue("err", NpgsqlDbType.Text, (object?)outcome.Error ?? DBNull.Value);
        cmd.Parameters.AddWithValue("f", outcome.FinishedAt);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false) ? (r.GetInt32(0), r.GetInt32(1)) : throw new UnknownRunException(runId);
    }

    public async Task<IReadOnlyDictionary<TenantId, TenantUse>> ReadTenantUsageAsync(CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT tenant, decayed, updated_at FROM {S}.tenant_usage", cancellationToken).ConfigureAwait(false);
        var uses = new Dictionary<TenantId, TenantUse>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            uses[Tenant(r.GetString(0))] = new TenantUse(r.GetDouble(1), r.GetFieldValue<DateTimeOffset>(2));
        }

        return uses;
    }

    public async Task WriteTenantUsageAsync(IReadOnlyDictionary<TenantId, TenantUse> uses, CancellationToken cancellationToken)
    {
        if (uses.Count == 0)
        {
            return;
        }

        await using var cmd = await _db.CommandAsync($"""
            INSERT INTO {S}.tenant_usage (tenant, decayed, updated_at)
            SELECT * FROM unnest(@t::text[], @d::double precision[], @at::timestamptz[])
            ON CONFLICT (tenant) DO UPDATE SET decayed = excluded.decayed, updated_at = excluded.updated_at
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", uses.Keys.Select(t => t.Value).ToArray());
        cmd.Parameters.AddWithValue("d", uses.Values.Select(u => u.Decayed).ToArray());
        cmd.Parameters.AddWithValue("at", uses.Values.Select(u => u.UpdatedAt).ToArray());
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<IReadOnlyList<TaskKey>> KeysAsync(NpgsqlCommand cmd, CancellationToken ct)
    {
        var keys = new List<TaskKey>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            keys.Add(new TaskKey(r.GetString(0), r.GetInt32(1)));
        }

        // RETURNING keeps no order: the store's is oldest run first, then task index.
        return [.. keys.OrderBy(k => k.RunId, StringComparer.Ordinal).ThenBy(k => k.Index)];
    }

    private static TenantId Tenant(string text) =>
        TenantId.TryParse(text) ?? throw new InvalidDataException($"the tenant column holds '{text}', which is not a tenant name");

    private async Task<IReadOnlyList<RunRecord>> QueryRunsAsync(string sql, Action<NpgsqlParameterCollection> bind, CancellationToken ct)
    {
        await using var cmd = await _db.CommandAsync(sql, ct).ConfigureAwait(false);
        bind(cmd.Parameters);
        var list = new List<RunRecord>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(new RunRecord(
                r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), States.ParseRun(r.GetString(5)),
                r.GetInt32(6), r.GetInt32(7), r.GetFieldValue<DateTimeOffset>(8),
                r.IsDBNull(9) ? null : r.GetFieldValue<DateTimeOffset>(9),
                r.IsDBNull(10) ? null : r.GetString(10),
                r.IsDBNull(11) ? null : r.GetString(11))
            {
                Tenant = TenantId.TryParse(r.GetString(12)) ?? throw new InvalidDataException($"run {r.GetString(0)}: the tenant column holds '{r.GetString(12)}', which is not a tenant name"),
                SubmittedBy = r.IsDBNull(13) ? null : r.GetString(13),
            });
        }

        return list;
    }

    private async Task<IReadOnlyList<TaskRecord>> QueryTasksAsync(string sql, Action<NpgsqlParameterCollection> bind, CancellationToken ct)
    {
        await using var cmd = await _db.CommandAsync(sql, ct).ConfigureAwait(false);
        bind(cmd.Parameters);
        var list = new List<TaskRecord>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(new TaskRecord(
                r.GetString(0), r.GetInt32(1), r.GetString(2), States.ParseTask(r.GetString(3)),
                JsonSerializer.Deserialize(r.GetString(4), RunStoreJson.Default.ListInputFile)!,
                JsonSerializer.Deserialize(r.GetString(5), RunStoreJson.Default.DictionaryStringString)!,
                r.GetInt32(6),
                r.IsDBNull(7) ? null : r.GetInt64(7),
                r.IsDBNull(8) ? null : r.GetString(8),
                r.IsDBNull(9) ? null : r.GetString(9),
                r.IsDBNull(10) ? null : r.GetFieldValue<DateTimeOffset>(10),
                r.IsDBNull(11) ? null : r.GetFieldValue<DateTimeOffset>(11))
            {
                ParentIndex = r.IsDBNull(12) ? null : r.GetInt32(12),
                LeaseUntil = r.IsDBNull(13) ? null : r.GetFieldValue<DateTimeOffset>(13),
                Hold = r.IsDBNull(14) || States.ParseTask(r.GetString(3)) != TaskState.Queued ? null : new TaskHold(r.GetString(14), r.GetString(15), r.GetString(16), r.GetFieldValue<DateTimeOffset>(17)),
            });
        }

        return list;
    }
}
