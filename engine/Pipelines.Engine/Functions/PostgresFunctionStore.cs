using System.Data.Common;
using Npgsql;
using NpgsqlTypes;
using Pipelines.Queue;
using Pipelines.RunStore;
using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.Functions;

/// <summary>
/// Functions, their versions and their invocations in PostgreSQL, in the run store's schema. A
/// deploy is one transaction that locks the function's row, so two deploys at once make at most
/// one version each and an identical content never makes a second. Invocations are kept within a
/// retention limit, pruned in bounded batches (the rules are on <see cref="IFunctionStore"/>).
/// </summary>
internal sealed class PostgresFunctionStore : IFunctionStore, IInvocationBacklog
{
    private const string VersionColumns = "v.name, v.version, v.spec, v.image_digest, v.yaml, v.content_sha256, v.deployed_at, v.deployed_by, v.tenant";
    private const string InvocationColumns = "id, function, version, image_digest, status, async, input_sha256, input_bytes, output_sha256, output_bytes, output_name, content_type, http_status, latency_ms, container_id, started_at, finished_at, error, caller, algorithm_version, route, shadow_of, shadow_equal, tenant";

    private readonly SchemaGate _db;

    // Null: the whole store (names in the default tenant; invocations by id, listings and figures of every tenant).
    private readonly TenantId? _tenant;

    /// <summary>The store over the tables in <paramref name="schema"/>; the data source is the gate's alone.</summary>
    public PostgresFunctionStore(NpgsqlDataSource dataSource, string schema = "pipelines") => _db = new SchemaGate(dataSource, schema, Tables);

    private PostgresFunctionStore(SchemaGate db, TenantId? tenant) => (_db, _tenant) = (db, tenant);

    private string S => _db.Schema;

    /// <summary>The tenant whose names this store's verbs address.</summary>
    private string Home => (_tenant ?? TenantId.Default).Value;

    /// <summary>The scope as a parameter: null reaches every tenant.</summary>
    private object Scope => (object?)_tenant?.Value ?? DBNull.Value;

    public IFunctionStore For(TenantScope scope) => scope.Narrow(_tenant) is var t && t == _tenant ? this : new PostgresFunctionStore(_db, t);

    /// <summary>The functions' tables, for the one schema owner (Hosting/PostgresSchema).</summary>
    public static SchemaPart Tables { get; } = new("function store", 5, SchemaSql);

    /// <summary>
    /// The functions' DDL, idempotent: safe to run by any number of processes, any number of
    /// times (under the engine's schema lock: Hosting/PostgresSchema runs it at host start).
    /// </summary>
    public static string SchemaSql(string schema) => $"""
        CREATE SCHEMA IF NOT EXISTS {schema};
        CREATE TABLE IF NOT EXISTS {schema}.functions (
            name text PRIMARY KEY,
            current_version int NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL);
        CREATE TABLE IF NOT EXISTS {schema}.function_versions (
            name text NOT NULL REFERENCES {schema}.functions ON DELETE CASCADE,
            version int NOT NULL,
            spec jsonb NOT NULL,
            image_digest text NOT NULL,
            yaml text NOT NULL,
            content_sha256 text NOT NULL,
            deployed_at timestamptz NOT NULL,
            deployed_by text NOT NULL,
            PRIMARY KEY (name, version));
        CREATE TABLE IF NOT EXISTS {schema}.function_invocations (
            id text PRIMARY KEY,
            function text NOT NULL REFERENCES {schema}.functions ON DELETE CASCADE,
            version int NOT NULL,
            image_digest text NOT NULL,
            status text NOT NULL,
            async boolean NOT NULL,
            input_sha256 text,
            input_bytes bigint NOT NULL,
            output_sha256 text,
            output_bytes bigint,
            output_name text,
            content_type text,
            http_status int,
            latency_ms double precision,
            container_id text,
            started_at timestamptz NOT NULL,
            finished_at timestamptz,
            error text,
            caller text);
        CREATE INDEX IF NOT EXISTS function_invocations_started ON {schema}.function_invocations (started_at);
        CREATE INDEX IF NOT EXISTS function_invocations_function ON {schema}.function_invocations (function, version, started_at);
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS algorithm_version text;
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS route text;
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS shadow_of text;
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS shadow_equal boolean;
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS cold_start boolean;
        -- v3, tenants (docs/tenants.md): a function's name is unique within its tenant. The constant
        -- default adds the columns without a rewrite; rows from before are the default tenant's.
        ALTER TABLE {schema}.functions ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
        ALTER TABLE {schema}.function_versions ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
        {SchemaPart.MovePrimaryKey(schema, "functions", "tenant, name")}
        {SchemaPart.MovePrimaryKey(schema, "function_versions", "tenant, name, version")}
        {SchemaPart.MoveForeignKey(schema, "function_versions", "tenant, name", "functions", "tenant, name")}
        {SchemaPart.MoveForeignKey(schema, "function_invocations", "tenant, function", "functions", "tenant, name")}
        -- v4, quotas (docs/tenants.md): why a queued async invocation waits.
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS held text;
        -- v5, fair share (docs/decisions.md): an async invocation waits for the dispatcher until released_at
        -- is set. Rows from before had their jobs queued at once: they are released (the default, then dropped).
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS released_at timestamptz DEFAULT now();
        ALTER TABLE {schema}.function_invocations ALTER COLUMN released_at DROP DEFAULT;
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS trace_parent text;
        CREATE INDEX IF NOT EXISTS function_invocations_waiting ON {schema}.function_invocations (tenant, started_at)
            WHERE async AND shadow_of IS NULL AND status IN ('queued', 'running');
        """;

    public async Task<DeployResult> DeployAsync(FunctionSpec spec, string yaml, string imageDigest, string contentSha256, string deployedBy, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var insert = new NpgsqlCommand($"INSERT INTO {S}.functions (tenant, name, current_version, created_at, updated_at) VALUES (@t, @n, 0, @now, @now) ON CONFLICT (tenant, name) DO NOTHING", conn, tx))
        {
            insert.Parameters.AddWithValue("t", Home);
            insert.Parameters.AddWithValue("n", spec.Name);
            insert.Parameters.AddWithValue("now", now);
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        // The row lock orders concurrent deploys of one function: the second sees the first's version.
        int current;
        await using (var select = new NpgsqlCommand($"SELECT current_version FROM {S}.functions WHERE tenant = @t AND name = @n FOR UPDATE", conn, tx))
        {
            select.Parameters.AddWithValue("t", Home);
            select.Parameters.AddWithValue("n", spec.Name);
            current = (int)(await select.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }

        if (current > 0)
        {
            var existing = await ReadVersionAsync(conn, tx, spec.Name, current, cancellationToken).ConfigureAwait(false);
            if (existing is not null && string.Equals(existing.ContentSha256, contentSha256, StringComparison.Ordinal))
            {
                await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                return new DeployResult(existing, Created: false, Replaced: null);
            }
        }

        var version = current + 1;
        await using (var add = new NpgsqlCommand($"""
            INSERT INTO {S}.function_versions (tenant, name, version, spec, image_digest, yaml, content_sha256, deployed_at, deployed_by)
            VALUES (@t, @n, @v, @spec, @digest, @yaml, @sha, @now, @by);
            UPDATE {S}.functions SET current_version = @v, updated_at = @now WHERE tenant = @t AND name = @n;
            """, conn, tx))
        {
            add.Parameters.AddWithValue("t", Home);
            add.Parameters.AddWithValue("n", spec.Name);
            add.Parameters.AddWithValue("v", version);
            add.Parameters.AddWithValue("spec", NpgsqlDbType.Jsonb, spec.ToJson());
            add.Parameters.AddWithValue("digest", imageDigest);
            add.Parameters.AddWithValue("yaml", yaml);
            add.Parameters.AddWithValue("sha", contentSha256);
            add.Parameters.AddWithValue("now", now);
            add.Parameters.AddWithValue("by", deployedBy);
            await add.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new DeployResult(new FunctionVersion(spec.Name, version, spec, imageDigest, yaml, contentSha256, now, deployedBy) { Tenant = _tenant ?? TenantId.Default }, Created: true, Replaced: current > 0 ? current : null);
    }

    public async Task<FunctionVersion?> GetAsync(string name, int? version, CancellationToken cancellationToken)
    {
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        if (version is { } v)
        {
            return await ReadVersionAsync(conn, null, name, v, cancellationToken).ConfigureAwait(false);
        }

        await using var cmd = new NpgsqlCommand($"SELECT {VersionColumns} FROM {S}.functions f JOIN {S}.function_versions v ON v.tenant = f.tenant AND v.name = f.name AND v.version = f.current_version WHERE f.tenant = @t AND f.name = @n", conn);
        cmd.Parameters.AddWithValue("t", Home);
        cmd.Parameters.AddWithValue("n", name);
        var list = await ReadVersionsAsync(cmd, cancellationToken).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    public async Task<IReadOnlyList<FunctionVersion>> ListAsync(CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT {VersionColumns} FROM {S}.functions f JOIN {S}.function_versions v ON v.tenant = f.tenant AND v.name = f.name AND v.version = f.current_version WHERE @t::text IS NULL OR f.tenant = @t ORDER BY f.name COLLATE \"C\", f.tenant COLLATE \"C\"", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        return await ReadVersionsAsync(cmd, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<FunctionVersion>> VersionsAsync(string name, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT {VersionColumns} FROM {S}.function_versions v WHERE v.tenant = @t AND v.name = @n ORDER BY v.version DESC", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home);
        cmd.Parameters.AddWithValue("n", name);
        return await ReadVersionsAsync(cmd, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<int>> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            WITH gone AS (DELETE FROM {S}.functions WHERE tenant = @t AND name = @n RETURNING tenant, name)
            SELECT v.version FROM {S}.function_versions v JOIN gone ON gone.tenant = v.tenant AND gone.name = v.name ORDER BY v.version DESC
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home);
        cmd.Parameters.AddWithValue("n", name);
        var versions = new List<int>();
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            versions.Add(reader.GetInt32(0));
        }

        return versions;
    }

    public async Task AddInvocationAsync(InvocationRecord r, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            INSERT INTO {S}.function_invocations ({InvocationColumns}, trace_parent)
            VALUES (@id, @fn, @v, @digest, @status, @async, @in_sha, @in_bytes, NULL, NULL, NULL, NULL, NULL, NULL, NULL, @started, NULL, NULL, @caller,
                    @alg, @route, @shadow_of, NULL, @t, @trace)
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("trace", NpgsqlDbType.Text, (object?)r.TraceParent ?? DBNull.Value);
        cmd.Parameters.AddWithValue("t", (_tenant ?? r.Tenant).Value);
        cmd.Parameters.AddWithValue("alg", NpgsqlDbType.Text, (object?)r.AlgorithmVersion ?? DBNull.Value);
        cmd.Parameters.AddWithValue("route", NpgsqlDbType.Text, (object?)r.Route ?? DBNull.Value);
        cmd.Parameters.AddWithValue("shadow_of", NpgsqlDbType.Text, (object?)r.ShadowOf ?? DBNull.Value);
        cmd.Parameters.AddWithValue("id", r.Id);
        cmd.Parameters.AddWithValue("fn", r.Function);
        cmd.Parameters.AddWithValue("v", r.Version);
        cmd.Parameters.AddWithValue("digest", r.ImageDigest);
        cmd.Parameters.AddWithValue("status", InvocationStatuses.Name(r.Status));
        cmd.Parameters.AddWithValue("async", r.Async);
        cmd.Parameters.AddWithValue("in_sha", NpgsqlDbType.Text, (object?)r.InputSha256 ?? DBNull.Value);
        cmd.Parameters.AddWithValue("in_bytes", r.InputBytes);
        cmd.Parameters.AddWithValue("started", r.StartedAt);
        cmd.Parameters.AddWithValue("caller", NpgsqlDbType.Text, (object?)r.Caller ?? DBNull.Value);
        try
        {
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ForeignKeyViolation)
        {
            throw new UnknownFunctionException(r.Function, e);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new ArgumentException($"invocation {r.Id} exists already", nameof(r), e);
        }
    }

    public async Task<bool> TryStartAsync(string id, FunctionVersion servedBy, string? route, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            UPDATE {S}.function_invocations SET status = 'running', image_digest = @digest, algorithm_version = @alg, route = @route, held = NULL
            WHERE id = @id AND status IN ('queued', 'running') AND (@t::text IS NULL OR tenant = @t)
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("id", id);
        cmd.Parameters.AddWithValue("digest", servedBy.ImageDigest);
        cmd.Parameters.AddWithValue("alg", NpgsqlDbType.Text, (object?)servedBy.AlgorithmVersion ?? DBNull.Value);
        cmd.Parameters.AddWithValue("route", NpgsqlDbType.Text, (object?)route ?? DBNull.Value);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    public async Task<IReadOnlyList<InvocationLoad>> LoadsAsync(CancellationToken cancellationToken)
    {
        // Through the partial index of async invocations not ended; one held by a quota holds no worker (its job is scheduled).
        await using var cmd = await _db.CommandAsync($"""
            SELECT tenant, count(*) FILTER (WHERE released_at IS NULL AND status = 'queued'), count(*) FILTER (WHERE released_at IS NOT NULL AND held IS NULL)
            FROM {S}.function_invocations
            WHERE async AND shadow_of IS NULL AND status IN ('queued', 'running') AND (@t::text IS NULL OR tenant = @t)
            GROUP BY tenant
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        var loads = new List<InvocationLoad>();
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            loads.Add(new InvocationLoad(TenantId.Parse(reader.GetString(0), "function_invocations.tenant"), (int)reader.GetInt64(1), (int)reader.GetInt64(2)));
        }

        return loads;
    }

    public async Task<IReadOnlyList<PendingInvocation>> OldestPendingAsync(TenantId tenant, int count, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            SELECT id, trace_parent FROM {S}.function_invocations
            WHERE tenant = @tenant AND async AND shadow_of IS NULL AND status = 'queued' AND released_at IS NULL AND (@t::text IS NULL OR tenant = @t)
            ORDER BY started_at, id COLLATE "C" LIMIT @n
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("tenant", tenant.Value);
        cmd.Parameters.AddWithValue("n", count);
        var pending = new List<PendingInvocation>();
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            pending.Add(new PendingInvocation(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1)));
        }

        return pending;
    }

    public async Task MarkReleasedAsync(IReadOnlyList<string> ids, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync(
            $"UPDATE {S}.function_invocations SET released_at = @now, held = NULL WHERE id = ANY(@ids) AND released_at IS NULL AND (@t::text IS NULL OR tenant = @t)", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("ids", ids.ToArray());
        cmd.Parameters.AddWithValue("now", now);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task HoldPendingAsync(TenantId tenant, string held, CancellationToken cancellationToken)
    {
        // The rows OldestPendingAsync reads (the partial index of async invocations not ended), only where the words differ.
        await using var cmd = await _db.CommandAsync($"""
            UPDATE {S}.function_invocations SET held = @held
            WHERE tenant = @tenant AND async AND shadow_of IS NULL AND status = 'queued' AND released_at IS NULL AND held IS DISTINCT FROM @held AND (@t::text IS NULL OR tenant = @t)
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("tenant", tenant.Value);
        cmd.Parameters.AddWithValue("held", held);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task HoldAsync(string id, string reason, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync(
            $"UPDATE {S}.function_invocations SET held = @reason, status = 'queued' WHERE id = @id AND status IN ('queued', 'running') AND (@t::text IS NULL OR tenant = @t)", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("id", id);
        cmd.Parameters.AddWithValue("reason", reason);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> FinishAsync(string id, InvocationEnd end, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // The end and its usage record in one transaction: only the call that ends the invocation writes either.
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand($"""
            UPDATE {S}.function_invocations SET status = @status, http_status = @http, output_sha256 = @out_sha, output_bytes = @out_bytes,
                output_name = @out_name, content_type = @ct, latency_ms = @latency, container_id = @container, finished_at = @now, error = @error,
                shadow_equal = @equal, cold_start = @cold
            WHERE id = @id AND status IN ('queued', 'running') AND (@t::text IS NULL OR tenant = @t)
            RETURNING {InvocationColumns}
            """, conn, tx);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("cold", end.ColdStart);
        cmd.Parameters.AddWithValue("equal", NpgsqlDbType.Boolean, (object?)end.ShadowEqual ?? DBNull.Value);
        cmd.Parameters.AddWithValue("id", id);
        cmd.Parameters.AddWithValue("status", InvocationStatuses.Name(end.Status));
        cmd.Parameters.AddWithValue("http", end.HttpStatus);
        cmd.Parameters.AddWithValue("out_sha", NpgsqlDbType.Text, (object?)end.OutputSha256 ?? DBNull.Value);
        cmd.Parameters.AddWithValue("out_bytes", NpgsqlDbType.Bigint, (object?)end.OutputBytes ?? DBNull.Value);
        cmd.Parameters.AddWithValue("out_name", NpgsqlDbType.Text, (object?)end.OutputName ?? DBNull.Value);
        cmd.Parameters.AddWithValue("ct", NpgsqlDbType.Text, (object?)end.ContentType ?? DBNull.Value);
        cmd.Parameters.AddWithValue("latency", end.LatencyMs);
        cmd.Parameters.AddWithValue("container", NpgsqlDbType.Text, (object?)end.ContainerId ?? DBNull.Value);
        cmd.Parameters.AddWithValue("now", now);
        cmd.Parameters.AddWithValue("error", NpgsqlDbType.Text, (object?)end.Error ?? DBNull.Value);
        var finished = await ReadInvocationsAsync(cmd, cancellationToken).ConfigureAwait(false);
        if (finished.Count == 0)
        {
            return false;
        }

        await PostgresUsageStore.InsertAsync(conn, tx, S, InvocationUsage.Of(new EndedInvocation(finished[0], end, now)), cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    public async Task<int> AddEndedAsync(IReadOnlyList<EndedInvocation> ended, CancellationToken cancellationToken)
    {
        if (ended.Count == 0)
        {
            return 0;
        }

        // One statement for the whole batch: the columns as arrays, unnested into rows. A function
        // deleted meanwhile has no rows to keep (its invocations went with it), and an id already
        // there is left as it is; a delete that commits between the check and the insert fails the
        // statement on the foreign key, and the next try leaves that function's rows out.
        var rows = ended.Select(e => (e.Record, e.End.ColdStart)).ToList();
        for (var attempt = 1; ; attempt++)
        {
            // The rows and the usage records of those written, in one transaction (an id already there has both).
            await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand($"""
                INSERT INTO {S}.function_invocations ({InvocationColumns}, cold_start)
                SELECT t.* FROM unnest(@id, @fn, @v, @digest, @status, @async, @in_sha, @in_bytes, @out_sha, @out_bytes, @out_name, @ct, @http,
                                       @latency, @container, @started, @finished, @error, @caller, @alg, @route, @shadow_of, @equal, @tenant, @cold)
                    AS t(id, function, version, image_digest, status, async, input_sha256, input_bytes, output_sha256, output_bytes, output_name,
                         content_type, http_status, latency_ms, container_id, started_at, finished_at, error, caller, algorithm_version, route,
                         shadow_of, shadow_equal, tenant, cold_start)
                WHERE EXISTS (SELECT 1 FROM {S}.functions f WHERE f.tenant = t.tenant AND f.name = t.function)
                ON CONFLICT (id) DO NOTHING
                RETURNING id
                """, conn, tx);
            cmd.Parameters.AddWithValue("id", rows.Select(r => r.Record.Id).ToArray());
            cmd.Parameters.AddWithValue("fn", rows.Select(r => r.Record.Function).ToArray());
            cmd.Parameters.AddWithValue("v", rows.Select(r => r.Record.Version).ToArray());
            cmd.Parameters.AddWithValue("digest", rows.Select(r => r.Record.ImageDigest).ToArray());
            cmd.Parameters.AddWithValue("status", rows.Select(r => InvocationStatuses.Name(r.Record.Status)).ToArray());
            cmd.Parameters.AddWithValue("async", rows.Select(r => r.Record.Async).ToArray());
            cmd.Parameters.AddWithValue("in_sha", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Record.InputSha256).ToArray());
            cmd.Parameters.AddWithValue("in_bytes", rows.Select(r => r.Record.InputBytes).ToArray());
            cmd.Parameters.AddWithValue("out_sha", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Record.OutputSha256).ToArray());
            cmd.Parameters.AddWithValue("out_bytes", NpgsqlDbType.Array | NpgsqlDbType.Bigint, rows.Select(r => r.Record.OutputBytes).ToArray());
            cmd.Parameters.AddWithValue("out_name", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Record.OutputName).ToArray());
            cmd.Parameters.AddWithValue("ct", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Record.ContentType).ToArray());
            cmd.Parameters.AddWithValue("http", NpgsqlDbType.Array | NpgsqlDbType.Integer, rows.Select(r => r.Record.HttpStatus).ToArray());
            cmd.Parameters.AddWithValue("latency", NpgsqlDbType.Array | NpgsqlDbType.Double, rows.Select(r => r.Record.LatencyMs).ToArray());
            cmd.Parameters.AddWithValue("container", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Record.ContainerId).ToArray());
            cmd.Parameters.AddWithValue("started", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, rows.Select(r => r.Record.StartedAt).ToArray());
            cmd.Parameters.AddWithValue("finished", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, rows.Select(r => r.Record.FinishedAt).ToArray());
            cmd.Parameters.AddWithValue("error", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Record.Error).ToArray());
            cmd.Parameters.AddWithValue("caller", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Record.Caller).ToArray());
            cmd.Parameters.AddWithValue("alg", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Record.AlgorithmVersion).ToArray());
            cmd.Parameters.AddWithValue("route", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Record.Route).ToArray());
            cmd.Parameters.AddWithValue("shadow_of", NpgsqlDbType.Array | NpgsqlDbType.Text, rows.Select(r => r.Record.ShadowOf).ToArray());
            cmd.Parameters.AddWithValue("equal", NpgsqlDbType.Array | NpgsqlDbType.Boolean, rows.Select(r => r.Record.ShadowEqual).ToArray());
            cmd.Parameters.AddWithValue("tenant", rows.Select(r => (_tenant ?? r.Record.Tenant).Value).ToArray());
            cmd.Parameters.AddWithValue("cold", rows.Select(r => r.ColdStart).ToArray());
            try
            {
                var written = new HashSet<string>(StringComparer.Ordinal);
                await using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        written.Add(r.GetString(0));
                    }
                }

                var usage = ended.Where(e => written.Contains(e.Record.Id)).Select(e => InvocationUsage.Of(e with { Started = e.Started with { Tenant = _tenant ?? e.Started.Tenant } })).ToList();
                await PostgresUsageStore.InsertAsync(conn, tx, S, usage, cancellationToken).ConfigureAwait(false);
                await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                return written.Count;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ForeignKeyViolation && attempt < 3)
            {
                // A function deleted while the batch was written: try again without its rows.
            }
        }
    }

    public async Task<InvocationRecord?> GetInvocationAsync(string id, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT {InvocationColumns}, held FROM {S}.function_invocations WHERE id = @id AND (@t::text IS NULL OR tenant = @t)", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("id", id);
        var list = await ReadInvocationsAsync(cmd, cancellationToken).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    public async Task<IReadOnlyList<InvocationRecord>> ListInvocationsAsync(string function, int limit, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT {InvocationColumns}, held FROM {S}.function_invocations WHERE tenant = @t AND function = @fn ORDER BY started_at DESC, id COLLATE \"C\" LIMIT @limit", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home);
        cmd.Parameters.AddWithValue("fn", function);
        cmd.Parameters.AddWithValue("limit", limit);
        return await ReadInvocationsAsync(cmd, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The figures in one statement (<see cref="IFunctionStore.StatsAsync"/>).</summary>
    public async Task<IReadOnlyList<InvocationStats>> StatsAsync(string? function, DateTimeOffset? since, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            SELECT function, version, count(*),
                   count(*) FILTER (WHERE status IN ('failed', 'timed_out', 'refused')),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms),
                   max(started_at),
                   algorithm_version,
                   COALESCE(route = 'shadow', false) AS shadow,
                   count(*) FILTER (WHERE status NOT IN ('queued', 'running')),
                   count(*) FILTER (WHERE shadow_equal),
                   count(*) FILTER (WHERE NOT shadow_equal),
                   count(*) FILTER (WHERE cold_start),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE cold_start IS NOT TRUE),
                   count(*) FILTER (WHERE status = 'refused'),
                   tenant
            FROM {S}.function_invocations
            WHERE (@fn::text IS NULL OR (tenant = @home AND function = @fn)) AND (@t::text IS NULL OR tenant = @t)
                AND (@since::timestamptz IS NULL OR started_at >= @since)
            GROUP BY function, tenant, version, algorithm_version, COALESCE(route = 'shadow', false)
            ORDER BY function COLLATE "C", tenant COLLATE "C", version DESC, shadow, algorithm_version COLLATE "C"
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("home", Home);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("fn", NpgsqlDbType.Text, (object?)function ?? DBNull.Value);
        cmd.Parameters.AddWithValue("since", NpgsqlDbType.TimestampTz, (object?)since ?? DBNull.Value);
        var list = new List<InvocationStats>();
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new InvocationStats(
                reader.GetString(0), reader.GetInt32(1), reader.GetInt64(2), reader.GetInt64(3),
                reader.IsDBNull(4) ? null : reader.GetDouble(4), reader.IsDBNull(5) ? null : reader.GetDouble(5),
                reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6))
            {
                AlgorithmVersion = reader.IsDBNull(7) ? null : reader.GetString(7),
                Shadow = reader.GetBoolean(8),
                Ended = reader.GetInt64(9),
                Equal = reader.GetInt64(10),
                Different = reader.GetInt64(11),
                ColdStarts = reader.GetInt64(12),
                WarmP95Ms = reader.IsDBNull(13) ? null : reader.GetDouble(13),
                Refused = reader.GetInt64(14),
                Tenant = TenantOf(reader.GetString(15), reader.GetString(0)),
            });
        }

        return list;
    }

    /// <summary>
    /// The prune in one statement: both rules go through the started_at index; the count rule
    /// reads Keep index entries to find its cut-off.
    /// </summary>
    public async Task<int> PruneAsync(InvocationRetention retention, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            WITH cut AS (
                SELECT GREATEST(
                    @oldest,
                    COALESCE((SELECT started_at FROM {S}.function_invocations WHERE @t::text IS NULL OR tenant = @t
                              ORDER BY started_at DESC OFFSET @keep LIMIT 1), '-infinity'::timestamptz)) AS before),
            doomed AS (
                SELECT i.id FROM {S}.function_invocations i, cut
                WHERE i.started_at < cut.before AND (@t::text IS NULL OR i.tenant = @t)
                ORDER BY i.started_at LIMIT @batch)
            DELETE FROM {S}.function_invocations WHERE id IN (SELECT id FROM doomed)
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("oldest", now - retention.KeepFor);

        // The Keep-th newest start: everything strictly older goes (ties at the cut stay).
        cmd.Parameters.AddWithValue("keep", Math.Max(0, retention.Keep - 1));
        cmd.Parameters.AddWithValue("batch", IFunctionStore.PruneBatch);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<FunctionVersion?> ReadVersionAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, string name, int version, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"SELECT {VersionColumns} FROM {S}.function_versions v WHERE v.tenant = @t AND v.name = @n AND v.version = @v", conn, tx);
        cmd.Parameters.AddWithValue("t", Home);
        cmd.Parameters.AddWithValue("n", name);
        cmd.Parameters.AddWithValue("v", version);
        var list = await ReadVersionsAsync(cmd, ct).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    private static async Task<List<FunctionVersion>> ReadVersionsAsync(DbCommand cmd, CancellationToken ct)
    {
        var list = new List<FunctionVersion>();
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(new FunctionVersion(
                reader.GetString(0), reader.GetInt32(1), FunctionSpec.FromJson(reader.GetString(2)), reader.GetString(3),
                reader.GetString(4), reader.GetString(5), reader.GetFieldValue<DateTimeOffset>(6), reader.GetString(7))
            {
                Tenant = TenantOf(reader.GetString(8), reader.GetString(0)),
            });
        }

        return list;
    }

    private static async Task<List<InvocationRecord>> ReadInvocationsAsync(DbCommand cmd, CancellationToken ct)
    {
        var list = new List<InvocationRecord>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(new InvocationRecord(
                r.GetString(0), r.GetString(1), r.GetInt32(2), r.GetString(3), InvocationStatuses.Parse(r.GetString(4)), r.GetBoolean(5),
                r.IsDBNull(6) ? null : r.GetString(6), r.GetInt64(7),
                r.IsDBNull(8) ? null : r.GetString(8), r.IsDBNull(9) ? null : r.GetInt64(9),
                r.IsDBNull(10) ? null : r.GetString(10), r.IsDBNull(11) ? null : r.GetString(11),
                r.IsDBNull(12) ? null : r.GetInt32(12), r.IsDBNull(13) ? null : r.GetDouble(13),
                r.IsDBNull(14) ? null : r.GetString(14), r.GetFieldValue<DateTimeOffset>(15),
                r.IsDBNull(16) ? null : r.GetFieldValue<DateTimeOffset>(16), r.IsDBNull(17) ? null : r.GetString(17),
                r.IsDBNull(18) ? null : r.GetString(18),
                r.IsDBNull(19) ? null : r.GetString(19), r.IsDBNull(20) ? null : r.GetString(20),
                r.IsDBNull(21) ? null : r.GetString(21), r.IsDBNull(22) ? null : r.GetBoolean(22))
            {
                Tenant = TenantOf(r.GetString(23), r.GetString(1)),
                Held = r.FieldCount > 24 && !r.IsDBNull(24) ? r.GetString(24) : null,
            });
        }

        return list;
    }

    private static TenantId TenantOf(string text, string function) =>
        TenantId.TryParse(text) ?? throw new InvalidDataException($"function {function}: the tenant column holds '{text}', which is not a tenant name");
}
