using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Pipelines.RunStore;
using Pipelines.Tenancy;

namespace Pipelines.Triggers;

/// <summary>
/// The triggers' store in PostgreSQL, in the run store's schema (the rules are on
/// <see cref="ITriggerStore"/>). Every write that two processes, a watcher and a webhook, or a
/// repeated delivery could make twice is an INSERT ... ON CONFLICT or a conditional UPDATE, never
/// a read followed by a write; a trigger's lock is a session advisory lock.
/// </summary>
internal sealed class PostgresTriggerStore : ITriggerStore
{
    private const string WorkflowColumns = "name, yaml, source, base_dir, overrides, trigger_uri, bucket, prefix, include, exclude, settle_ms, registered_at, tenant";

    // pg_advisory_lock(int, int): the first number names this use, the second the trigger.
    private const int TriggerLockClass = 7310023;

    private readonly SchemaGate _db;

    // Null: the whole store (names in the default tenant, listings of every tenant).
    private readonly TenantId? _tenant;

    /// <summary>The store over the tables in <paramref name="schema"/>; the data source is the gate's alone.</summary>
    public PostgresTriggerStore(NpgsqlDataSource dataSource, string schema = "pipelines") => _db = new SchemaGate(dataSource, schema, Tables);

    private PostgresTriggerStore(SchemaGate db, TenantId? tenant) => (_db, _tenant) = (db, tenant);

    private string S => _db.Schema;

    /// <summary>The tenant whose names this store's verbs address.</summary>
    private TenantId Home => _tenant ?? TenantId.Default;

    public ITriggerStore For(TenantScope scope) => scope.Narrow(_tenant) is var t && t == _tenant ? this : new PostgresTriggerStore(_db, t);

    /// <summary>Registered workflows, the ledger, batches and checkpoints; made by Hosting/PostgresSchema.</summary>
    public static SchemaPart Tables { get; } = new("trigger store", 3, s => $"""
            CREATE TABLE IF NOT EXISTS {s}.workflows (
                name text PRIMARY KEY,
                yaml text NOT NULL,
                source text NOT NULL,
                base_dir text,
                overrides jsonb NOT NULL,
                trigger_uri text NOT NULL,
                bucket text NOT NULL,
                prefix text NOT NULL,
                include jsonb NOT NULL,
                exclude jsonb NOT NULL,
                settle_ms bigint NOT NULL,
                registered_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL);
            CREATE TABLE IF NOT EXISTS {s}.trigger_objects (
                workflow text NOT NULL REFERENCES {s}.workflows ON DELETE CASCADE,
                bucket text NOT NULL,
                key text NOT NULL,
                etag text NOT NULL,
                size bigint NOT NULL,
                state text NOT NULL,
                source text NOT NULL,
                seen_at timestamptz NOT NULL,
                run_id text,
                note text,
                PRIMARY KEY (workflow, bucket, key, etag));
            CREATE INDEX IF NOT EXISTS trigger_objects_pending ON {s}.trigger_objects (workflow, seen_at) WHERE state = 'pending';
            CREATE INDEX IF NOT EXISTS trigger_objects_run ON {s}.trigger_objects (run_id) WHERE run_id IS NOT NULL;
            CREATE TABLE IF NOT EXISTS {s}.trigger_batches (
                run_id text PRIMARY KEY,
                workflow text NOT NULL REFERENCES {s}.workflows ON DELETE CASCADE,
                state text NOT NULL,
                objects int NOT NULL,
                claimed_at timestamptz NOT NULL,
                started_at timestamptz,
                error text);
            CREATE TABLE IF NOT EXISTS {s}.trigger_state (
                workflow text PRIMARY KEY REFERENCES {s}.workflows ON DELETE CASCADE,
                baseline_done boolean NOT NULL DEFAULT false,
                start_after text,
                last_full_at timestamptz,
                last_full_listed bigint,
                last_poll_at timestamptz,
                last_poll_mode text,
                last_poll_listed bigint,
                last_error text,
                last_error_at timestamptz);
            -- v2, tenants (docs/tenants.md): a workflow's name is unique within its tenant. The constant
            -- default adds the columns without a rewrite; rows from before are the default tenant's.
            ALTER TABLE {s}.workflows ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
            ALTER TABLE {s}.trigger_objects ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
            ALTER TABLE {s}.trigger_batches ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
            ALTER TABLE {s}.trigger_state ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
            {SchemaPart.MovePrimaryKey(s, "workflows", "tenant, name")}
            {SchemaPart.MovePrimaryKey(s, "trigger_objects", "tenant, workflow, bucket, key, etag")}
            {SchemaPart.MovePrimaryKey(s, "trigger_state", "tenant, workflow")}
            {SchemaPart.MoveForeignKey(s, "trigger_objects", "tenant, workflow", "workflows", "tenant, name")}
            {SchemaPart.MoveForeignKey(s, "trigger_batches", "tenant, workflow", "workflows", "tenant, name")}
            {SchemaPart.MoveForeignKey(s, "trigger_state", "tenant, workflow", "workflows", "tenant, name")}
            -- v3: when a version landed in the bucket (its Last-Modified, or its event's eventTime), for the
            -- trigger lag; null for rows from before and for reporters that do not say.
            ALTER TABLE {s}.trigger_objects ADD COLUMN IF NOT EXISTS landed_at timestamptz;
        """);

    public async Task<bool> UpsertAsync(RegisteredTrigger t, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var tenant = _tenant ?? t.Tenant;
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        string? oldUri;
        await using (var get = new NpgsqlCommand($"SELECT trigger_uri FROM {S}.workflows WHERE tenant = @t AND name = @n FOR UPDATE", conn, tx))
        {
            get.Parameters.AddWithValue("t", tenant.Value);
            get.Parameters.AddWithValue("n", t.Name);
            oldUri = await get.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
        }

        await using (var up = new NpgsqlCommand($"""
            INSERT INTO {S}.workflows ({WorkflowColumns}, updated_at)
            VALUES (@n, @yaml, @src, @dir, @ovr, @uri, @b, @p, @inc, @exc, @settle, @now, @t, @now)
            ON CONFLICT (tenant, name) DO UPDATE SET yaml = excluded.yaml, source = excluded.source, base_dir = excluded.base_dir,
                overrides = excluded.overrides, trigger_uri = excluded.trigger_uri, bucket = excluded.bucket, prefix = excluded.prefix,
                include = excluded.include, exclude = excluded.exclude, settle_ms = excluded.settle_ms, updated_at = excluded.updated_at
            """, conn, tx))
        {
            up.Parameters.AddWithValue("n", t.Name);
            up.Parameters.AddWithValue("yaml", t.Yaml);
            up.Parameters.AddWithValue("src", t.Source);
            up.Parameters.AddWithValue("dir", (object?)t.BaseDirectory ?? DBNull.Value);
            up.Parameters.AddWithValue("ovr", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(t.Overrides, TriggersJson.Default.IReadOnlyListString));
            up.Parameters.AddWithValue("uri", t.Uri);
            up.Parameters.AddWithValue("b", t.Bucket);
            up.Parameters.AddWithValue("p", t.Prefix);
            up.Parameters.AddWithValue("inc", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(t.Include, TriggersJson.Default.IReadOnlyListString));
            up.Parameters.AddWithValue("exc", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(t.Exclude, TriggersJson.Default.IReadOnlyListString));
            up.Parameters.AddWithValue("settle", (long)t.Settle.TotalMilliseconds);
            up.Parameters.AddWithValue("now", now);
            up.Parameters.AddWithValue("t", tenant.Value);
            await up.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        var needsBaseline = oldUri is null || !string.Equals(oldUri, t.Uri, StringComparison.Ordinal);
        if (needsBaseline)
        {
            await using var reset = new NpgsqlCommand($"""
                UPDATE {S}.trigger_objects SET state = 'dropped', note = 'pending when the trigger uri changed from ' || @old
                WHERE tenant = @t AND workflow = @n AND state = 'pending';
                DELETE FROM {S}.trigger_state WHERE tenant = @t AND workflow = @n;
                INSERT INTO {S}.trigger_state (tenant, workflow, baseline_done) VALUES (@t, @n, false);
                """, conn, tx);
            reset.Parameters.AddWithValue("t", tenant.Value);
            reset.Parameters.AddWithValue("n", t.Name);
            reset.Parameters.AddWithValue("old", oldUri ?? "");
            await reset.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await using var ensure = new NpgsqlCommand($"INSERT INTO {S}.trigger_state (tenant, workflow) VALUES (@t, @n) ON CONFLICT DO NOTHING", conn, tx);
            ensure.Parameters.AddWithValue("t", tenant.Value);
            ensure.Parameters.AddWithValue("n", t.Name);
            await ensure.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return needsBaseline || !await IsBaselineDoneAsync(tenant, t.Name, cancellationToken).ConfigureAwait(false);
    }

    public async Task CompleteBaselineAsync(string workflow, string? startAfter, DateTimeOffset now, long listed, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            UPDATE {S}.trigger_state SET baseline_done = true, start_after = @sa, last_full_at = @now, last_full_listed = @listed,
                last_poll_at = @now, last_poll_mode = 'baseline', last_poll_listed = @listed
            WHERE tenant = @t AND workflow = @n
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home.Value);
        cmd.Parameters.AddWithValue("n", workflow);
        cmd.Parameters.AddWithValue("sa", (object?)startAfter ?? DBNull.Value);
        cmd.Parameters.AddWithValue("now", now);
        cmd.Parameters.AddWithValue("listed", listed);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public Task<bool> IsBaselineDoneAsync(string workflow, CancellationToken cancellationToken) => IsBaselineDoneAsync(Home, workflow, cancellationToken);

    private async Task<bool> IsBaselineDoneAsync(TenantId tenant, string workflow, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT baseline_done FROM {S}.trigger_state WHERE tenant = @t AND workflow = @n", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", tenant.Value);
        cmd.Parameters.AddWithValue("n", workflow);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true;
    }

    public async Task<bool> RemoveAsync(string workflow, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"DELETE FROM {S}.workflows WHERE tenant = @t AND name = @n", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home.Value);
        cmd.Parameters.AddWithValue("n", workflow);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    public Task<IReadOnlyList<RegisteredTrigger>> ListAsync(CancellationToken cancellationToken) =>
        ReadTriggersAsync("@t::text IS NULL OR tenant = @t", _tenant, null, cancellationToken);

    public async Task<RegisteredTrigger?> GetAsync(string workflow, CancellationToken cancellationToken) =>
        (await ReadTriggersAsync("tenant = @t AND name = @n", Home, workflow, cancellationToken).ConfigureAwait(false)).SingleOrDefault();

    private async Task<IReadOnlyList<RegisteredTrigger>> ReadTriggersAsync(string where, TenantId? tenant, string? name, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT {WorkflowColumns} FROM {S}.workflows WHERE {where} ORDER BY name COLLATE \"C\", tenant COLLATE \"C\"", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, (object?)tenant?.Value ?? DBNull.Value);
        cmd.Parameters.AddWithValue("n", NpgsqlDbType.Text, (object?)name ?? DBNull.Value);
        var list = new List<RegisteredTrigger>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new RegisteredTrigger(
                r.GetString(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3),
                JsonSerializer.Deserialize(r.GetString(4), TriggersJson.Default.ListString)!,
                r.GetString(5), r.GetString(6), r.GetString(7),
                JsonSerializer.Deserialize(r.GetString(8), TriggersJson.Default.ListString)!,
                JsonSerializer.Deserialize(r.GetString(9), TriggersJson.Default.ListString)!,
                TimeSpan.FromMilliseconds(r.GetInt64(10)),
                r.GetFieldValue<DateTimeOffset>(11))
            {
                Tenant = TenantOf(r.GetString(12), r.GetString(0)),
            });
        }

        return list;
    }

    /// <summary>
    /// Records object versions in one statement: ON CONFLICT leaves a version in the ledger as it
    /// is, except a deleted one that a pending sighting revives.
    /// </summary>
    public async Task<int> RecordAsync(string workflow, string bucket, IReadOnlyList<(LedgerObject Object, LedgerState State, string? Note)> objects, string source, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (objects.Count == 0)
        {
            return 0;
        }

        await using var cmd = await _db.CommandAsync($"""
            INSERT INTO {S}.trigger_objects AS o (tenant, workflow, bucket, key, etag, size, state, source, seen_at, note, landed_at)
            SELECT @t, @w, @b, k, e, s, st, @src, @now, n, l FROM unnest(@keys, @etags, @sizes, @states, @notes, @landed) AS t(k, e, s, st, n, l)
            ON CONFLICT (tenant, workflow, bucket, key, etag) DO UPDATE SET state = 'pending', seen_at = excluded.seen_at, source = excluded.source, note = NULL,
                landed_at = coalesce(excluded.landed_at, o.landed_at)
                WHERE o.state = 'deleted' AND excluded.state = 'pending'
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home.Value);
        cmd.Parameters.AddWithValue("w", workflow);
        cmd.Parameters.AddWithValue("b", bucket);
        cmd.Parameters.AddWithValue("src", source);
        cmd.Parameters.AddWithValue("now", now);
        cmd.Parameters.AddWithValue("keys", objects.Select(o => o.Object.Key).ToArray());
        cmd.Parameters.AddWithValue("etags", objects.Select(o => o.Object.ETag).ToArray());
        cmd.Parameters.AddWithValue("sizes", objects.Select(o => o.Object.Size).ToArray());
        cmd.Parameters.AddWithValue("states", objects.Select(o => Name(o.State)).ToArray());
        cmd.Parameters.Add(new NpgsqlParameter("notes", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = objects.Select(o => (object?)o.Note ?? DBNull.Value).ToArray() });
        cmd.Parameters.Add(new NpgsqlParameter("landed", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { Value = objects.Select(o => (object?)o.Object.LandedAt?.ToUniversalTime() ?? DBNull.Value).ToArray() });
        try
        {
            return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ForeignKeyViolation)
        {
            // The workflow is not registered (unregistered meanwhile): its objects are no one's work.
            return 0;
        }
    }

    public async Task<int> MarkDeletedAsync(string workflow, string bucket, string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            UPDATE {S}.trigger_objects SET state = 'deleted', note = 'removed ' || to_char(@now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ' before a run took it'
            WHERE tenant = @t AND workflow = @w AND bucket = @b AND key = @k AND state = 'pending'
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home.Value);
        cmd.Parameters.AddWithValue("w", workflow);
        cmd.Parameters.AddWithValue("b", bucket);
        cmd.Parameters.AddWithValue("k", key);
        cmd.Parameters.AddWithValue("now", now);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<PendingObjects> PendingAsync(string workflow, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT count(*), max(seen_at) FROM {S}.trigger_objects WHERE tenant = @t AND workflow = @w AND state = 'pending'", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home.Value);
        cmd.Parameters.AddWithValue("w", workflow);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await r.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new PendingObjects((int)r.GetInt64(0), r.IsDBNull(1) ? null : r.GetFieldValue<DateTimeOffset>(1));
    }

    /// <summary>Claims versions and records the batch in one transaction.</summary>
    public async Task<TriggerBatch?> ClaimAsync(string workflow, string runId, int max, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var objects = new List<LedgerObject>();
        DateTimeOffset? firstSeen = null;
        DateTimeOffset? landed = null;

        // At most once: a row moves from pending to claimed only here, by a conditional update
        // under row locks (SKIP LOCKED: a second claimer at the same moment takes other rows or
        // none), and the run id it names is recorded in the same transaction as the batch row.
        // Nothing is lost: if this process dies after the commit, the batch stays 'claimed' and
        // the next cycle of any trigger process submits it under this same run id.
        await using (var claim = new NpgsqlCommand($"""
            WITH pick AS (
                SELECT bucket, key, etag FROM {S}.trigger_objects
                WHERE tenant = @t AND workflow = @w AND state = 'pending'
                ORDER BY seen_at, key COLLATE "C"
                LIMIT @max
                FOR UPDATE SKIP LOCKED)
            UPDATE {S}.trigger_objects o SET state = 'claimed', run_id = @run
            FROM pick
            WHERE o.tenant = @t AND o.workflow = @w AND o.bucket = pick.bucket AND o.key = pick.key AND o.etag = pick.etag AND o.state = 'pending'
            RETURNING o.key, o.size, o.etag, o.seen_at, o.landed_at
            """, conn, tx))
        {
            claim.Parameters.AddWithValue("t", Home.Value);
            claim.Parameters.AddWithValue("w", workflow);
            claim.Parameters.AddWithValue("run", runId);
            claim.Parameters.AddWithValue("max", max);
            await using var r = await claim.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var seen = r.GetFieldValue<DateTimeOffset>(3);
                var at = r.IsDBNull(4) ? (DateTimeOffset?)null : r.GetFieldValue<DateTimeOffset>(4);
                objects.Add(new LedgerObject(r.GetString(0), r.GetInt64(1), r.GetString(2)) { LandedAt = at });
                firstSeen = firstSeen is { } f && f <= seen ? f : seen;
                landed = landed is { } l && l <= (at ?? seen) ? l : at ?? seen;
            }
        }

        if (objects.Count == 0)
        {
            await tx.RollbackAsync(cancellationToken).ConfigureAwait(false);
            return null;
        }

        await using (var batch = new NpgsqlCommand($"INSERT INTO {S}.trigger_batches (run_id, tenant, workflow, state, objects, claimed_at) VALUES (@run, @t, @w, 'claimed', @n, @now)", conn, tx))
        {
            batch.Parameters.AddWithValue("t", Home.Value);
            batch.Parameters.AddWithValue("run", runId);
            batch.Parameters.AddWithValue("w", workflow);
            batch.Parameters.AddWithValue("n", objects.Count);
            batch.Parameters.AddWithValue("now", now);
            try
            {
                await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                // The transaction is rolled back with the claim: nothing is taken.
                throw new ArgumentException($"run {runId} has a batch already", nameof(runId), e);
            }
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new TriggerBatch(runId, workflow, objects.OrderBy(o => o.Key, StringComparer.Ordinal).ToList(), now) { FirstSeenAt = firstSeen, LandedAt = landed };
    }

    public async Task<IReadOnlyList<TriggerBatch>> OpenBatchesAsync(string workflow, CancellationToken cancellationToken)
    {
        var batches = new List<(string RunId, DateTimeOffset At)>();
        await using (var cmd = await _db.CommandAsync($"SELECT run_id, claimed_at FROM {S}.trigger_batches WHERE tenant = @t AND workflow = @w AND state = 'claimed' ORDER BY claimed_at, run_id COLLATE \"C\"", cancellationToken).ConfigureAwait(false))
        {
            cmd.Parameters.AddWithValue("t", Home.Value);
            cmd.Parameters.AddWithValue("w", workflow);
            await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                batches.Add((r.GetString(0), r.GetFieldValue<DateTimeOffset>(1)));
            }
        }

        var result = new List<TriggerBatch>();
        foreach (var (runId, at) in batches)
        {
            result.Add(new TriggerBatch(runId, workflow, await BatchObjectsAsync(runId, cancellationToken).ConfigureAwait(false), at));
        }

        return result;
    }

    public async Task<IReadOnlyList<LedgerObject>> BatchObjectsAsync(string runId, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT key, size, etag, landed_at FROM {S}.trigger_objects WHERE run_id = @run AND (@t::text IS NULL OR tenant = @t) ORDER BY key COLLATE \"C\"", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, (object?)_tenant?.Value ?? DBNull.Value);
        var list = new List<LedgerObject>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new LedgerObject(r.GetString(0), r.GetInt64(1), r.GetString(2)) { LandedAt = r.IsDBNull(3) ? null : r.GetFieldValue<DateTimeOffset>(3) });
        }

        return list;
    }

    public async Task<bool> FinishBatchAsync(string runId, bool started, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"UPDATE {S}.trigger_batches SET state = @s, started_at = @now, error = @e WHERE run_id = @run AND state = 'claimed' AND (@t::text IS NULL OR tenant = @t)", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, (object?)_tenant?.Value ?? DBNull.Value);
        cmd.Parameters.AddWithValue("s", started ? "started" : "failed");
        cmd.Parameters.AddWithValue("e", (object?)error ?? DBNull.Value);
        cmd.Parameters.AddWithValue("now", now);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    public async Task<TriggerPollState> GetPollStateAsync(string workflow, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT start_after, last_full_at, last_full_listed FROM {S}.trigger_state WHERE tenant = @t AND workflow = @w", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home.Value);
        cmd.Parameters.AddWithValue("w", workflow);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return new TriggerPollState(null, null, null);
        }

        return new TriggerPollState(
            r.IsDBNull(0) ? null : r.GetString(0),
            r.IsDBNull(1) ? null : r.GetFieldValue<DateTimeOffset>(1),
            r.IsDBNull(2) ? null : r.GetInt64(2));
    }

    public async Task SavePollAsync(string workflow, PollOutcome poll, bool full, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            UPDATE {S}.trigger_state SET last_poll_at = @at, last_poll_mode = @mode, last_poll_listed = @listed,
                start_after = coalesce(@sa, start_after),
                last_full_at = CASE WHEN @full THEN @at ELSE last_full_at END,
                last_full_listed = CASE WHEN @full THEN @listed ELSE last_full_listed END
            WHERE tenant = @t AND workflow = @w
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home.Value);
        cmd.Parameters.AddWithValue("w", workflow);
        cmd.Parameters.AddWithValue("at", poll.At);
        cmd.Parameters.AddWithValue("mode", poll.Mode);
        cmd.Parameters.AddWithValue("listed", poll.Listed);
        cmd.Parameters.Add(new NpgsqlParameter("sa", NpgsqlDbType.Text) { Value = (object?)poll.StartAfter ?? DBNull.Value });
        cmd.Parameters.AddWithValue("full", full);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task SaveErrorAsync(string workflow, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"UPDATE {S}.trigger_state SET last_error = @e, last_error_at = CASE WHEN @e IS NULL THEN last_error_at ELSE @now END WHERE tenant = @t AND workflow = @w", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home.Value);
        cmd.Parameters.AddWithValue("w", workflow);
        cmd.Parameters.Add(new NpgsqlParameter("e", NpgsqlDbType.Text) { Value = (object?)error ?? DBNull.Value });
        cmd.Parameters.AddWithValue("now", now);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TriggerSummary>> SummariesAsync(CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            SELECT w.name, w.trigger_uri, w.settle_ms, w.registered_at,
                   s.last_poll_at, s.last_poll_mode, s.last_poll_listed, s.last_error, s.last_error_at,
                   coalesce(o.seen, 0), coalesce(o.pending, 0), coalesce(o.baseline, 0), coalesce(o.rejected, 0),
                   coalesce(b.started, 0), coalesce(b.failed, 0), l.run_id, l.claimed_at, w.tenant
            FROM {S}.workflows w
            LEFT JOIN {S}.trigger_state s ON s.tenant = w.tenant AND s.workflow = w.name
            LEFT JOIN LATERAL (
                SELECT count(*) FILTER (WHERE state NOT IN ('baseline', 'rejected')) AS seen,
                       count(*) FILTER (WHERE state = 'pending') AS pending,
                       count(*) FILTER (WHERE state = 'baseline') AS baseline,
                       count(*) FILTER (WHERE state = 'rejected') AS rejected
                FROM {S}.trigger_objects WHERE tenant = w.tenant AND workflow = w.name) o ON true
            LEFT JOIN LATERAL (
                SELECT count(*) FILTER (WHERE state = 'started') AS started, count(*) FILTER (WHERE state = 'failed') AS failed
                FROM {S}.trigger_batches WHERE tenant = w.tenant AND workflow = w.name) b ON true
            LEFT JOIN LATERAL (
                SELECT run_id, claimed_at FROM {S}.trigger_batches WHERE tenant = w.tenant AND workflow = w.name AND state = 'started'
                ORDER BY claimed_at DESC, run_id COLLATE "C" DESC LIMIT 1) l ON true
            WHERE @t::text IS NULL OR w.tenant = @t
            ORDER BY w.name COLLATE "C", w.tenant COLLATE "C"
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, (object?)_tenant?.Value ?? DBNull.Value);
        var list = new List<TriggerSummary>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new TriggerSummary(
                r.GetString(0), r.GetString(1), TimeSpan.FromMilliseconds(r.GetInt64(2)), r.GetFieldValue<DateTimeOffset>(3),
                r.IsDBNull(4) ? null : r.GetFieldValue<DateTimeOffset>(4),
                r.IsDBNull(5) ? null : r.GetString(5),
                r.IsDBNull(6) ? null : r.GetInt64(6),
                r.IsDBNull(7) ? null : r.GetString(7),
                r.IsDBNull(8) ? null : r.GetFieldValue<DateTimeOffset>(8),
                r.GetInt64(9), r.GetInt64(10), r.GetInt64(11), r.GetInt64(12), r.GetInt64(13), r.GetInt64(14),
                r.IsDBNull(15) ? null : r.GetString(15),
                r.IsDBNull(16) ? null : r.GetFieldValue<DateTimeOffset>(16))
            {
                Tenant = TenantOf(r.GetString(17), r.GetString(0)),
            });
        }

        return list;
    }

    /// <summary>A session advisory lock on a connection of its own: it ends with the handle, or with the connection if this process dies.</summary>
    public async Task<IAsyncDisposable?> TryLockAsync(string workflow, CancellationToken cancellationToken)
    {
        var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var cmd = new NpgsqlCommand("SELECT pg_try_advisory_lock(@c, hashtext(@k))", conn);
            cmd.Parameters.AddWithValue("c", TriggerLockClass);
            cmd.Parameters.AddWithValue("k", LockKey(workflow));
            if (await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true)
            {
                return new HeldLock(conn, LockKey(workflow));
            }
        }
        catch
        {
            await conn.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        await conn.DisposeAsync().ConfigureAwait(false);
        return null;
    }

    internal static string Name(LedgerState s) => s.ToString().ToLowerInvariant();

    /// <summary>The lock's name: the default tenant's keeps the one it had before tenants (the workflow's name), another tenant's adds the tenant.</summary>
    private string LockKey(string workflow) => S + "/" + (Home.IsDefault ? workflow : Home.Value + "/" + workflow);

    private static TenantId TenantOf(string text, string workflow) =>
        TenantId.TryParse(text) ?? throw new InvalidDataException($"workflow {workflow}: the tenant column holds '{text}', which is not a tenant name");

    private sealed class HeldLock(NpgsqlConnection conn, string key) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                await using var cmd = new NpgsqlCommand("SELECT pg_advisory_unlock(@c, hashtext(@k))", conn);
                cmd.Parameters.AddWithValue("c", TriggerLockClass);
                cmd.Parameters.AddWithValue("k", key);
                await cmd.ExecuteScalarAsync(CancellationToken.None).ConfigureAwait(false);
            }
            finally
            {
                // Closing returns the connection to the pool, which resets the session
                // (DISCARD ALL) before reuse, so a failed unlock cannot leak the lock.
                await conn.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
