using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Pipelines.RunStore;
using Pipelines.Tenancy;

namespace Pipelines.Algorithms;

/// <summary>
/// The algorithm catalog in PostgreSQL (the rules are on <see cref="IAlgorithmStore"/>): a
/// digest's lock is a transaction's advisory lock, held from before the tarball callback to the
/// commit.
/// </summary>
internal sealed class PostgresAlgorithmStore : IAlgorithmStore
{
    /// <summary>The catalog's tables, created by Hosting/PostgresSchema.</summary>
    public static SchemaPart Tables { get; } = new("algorithm catalog", 3, s => $"""
        CREATE TABLE IF NOT EXISTS {s}.algorithm_versions (
            name text NOT NULL,
            version text NOT NULL,
            digest text NOT NULL,
            size_bytes bigint NOT NULL,
            pushed_by text NOT NULL,
            pushed_at timestamptz NOT NULL,
            notes text,
            repo_tags jsonb NOT NULL,
            lock_down jsonb NOT NULL,
            PRIMARY KEY (name, version));
        CREATE INDEX IF NOT EXISTS algorithm_versions_digest ON {s}.algorithm_versions (digest);
        CREATE TABLE IF NOT EXISTS {s}.algorithm_channels (
            name text NOT NULL,
            channel text NOT NULL,
            version text NOT NULL,
            percent int NOT NULL DEFAULT 100,
            updated_at timestamptz NOT NULL,
            updated_by text NOT NULL,
            PRIMARY KEY (name, channel),
            FOREIGN KEY (name, version) REFERENCES {s}.algorithm_versions (name, version));
        CREATE TABLE IF NOT EXISTS {s}.image_loads (
            id bigserial PRIMARY KEY,
            digest text NOT NULL,
            worker text NOT NULL,
            source text NOT NULL,
            seconds double precision NOT NULL,
            bytes bigint NOT NULL,
            loaded_at timestamptz NOT NULL);
        CREATE INDEX IF NOT EXISTS image_loads_digest ON {s}.image_loads (digest, loaded_at);
        ALTER TABLE {s}.algorithm_channels ADD COLUMN IF NOT EXISTS shadow boolean NOT NULL DEFAULT false;
        CREATE TABLE IF NOT EXISTS {s}.algorithm_events (
            id bigserial PRIMARY KEY,
            name text NOT NULL,
            action text NOT NULL,
            version text,
            percent int,
            by_whom text NOT NULL,
            reason text,
            at timestamptz NOT NULL);
        CREATE INDEX IF NOT EXISTS algorithm_events_name ON {s}.algorithm_events (name, at);
        -- v3, tenants (docs/tenants.md): an algorithm's name is unique within its tenant; a load names the
        -- tenant that caused it. The constant default adds the columns without a rewrite; rows from before are
        -- the default tenant's. Digests stay shared: the digest index and lock reach every tenant.
        ALTER TABLE {s}.algorithm_versions ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
        ALTER TABLE {s}.algorithm_channels ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
        ALTER TABLE {s}.algorithm_events ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
        ALTER TABLE {s}.image_loads ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
        {SchemaPart.MovePrimaryKey(s, "algorithm_versions", "tenant, name, version")}
        {SchemaPart.MovePrimaryKey(s, "algorithm_channels", "tenant, name, channel")}
        {SchemaPart.MoveForeignKey(s, "algorithm_channels", "tenant, name, version", "algorithm_versions", "tenant, name, version", onDelete: "")}
        """);

    /// <summary>The advisory lock class under which a digest's versions and its tarball change together.</summary>
    private const int DigestLock = 7310022;

    // Beside the digests' class: a tenant's pushes, while its stored bytes are summed (quota StoredBytes).
    private const int TenantLock = 7310025;

    private readonly SchemaGate _db;

    // Null: the whole store (names in the default tenant, listings of every tenant).
    private readonly TenantId? _tenant;

    /// <summary>The store over the tables in <paramref name="schema"/>; the data source is the gate's alone.</summary>
    public PostgresAlgorithmStore(NpgsqlDataSource dataSource, string schema = "pipelines") => _db = new SchemaGate(dataSource, schema, Tables);

    private PostgresAlgorithmStore(SchemaGate db, TenantId? tenant) => (_db, _tenant) = (db, tenant);

    private string S => _db.Schema;

    /// <summary>The tenant whose names this store's verbs address.</summary>
    private string Home => (_tenant ?? TenantId.Default).Value;

    /// <summary>The scope as a parameter: null reaches every tenant.</summary>
    private object Scope => (object?)_tenant?.Value ?? DBNull.Value;

    public IAlgorithmStore For(TenantScope scope) => scope.Narrow(_tenant) is var t && t == _tenant ? this : new PostgresAlgorithmStore(_db, t);

    private const string Columns = "name, version, digest, size_bytes, pushed_by, pushed_at, notes, repo_tags, lock_down, tenant";

    /// <summary>One name in this store's tenant, or (no name) every algorithm in its scope.</summary>
    private const string NameOrScope = "(@n::text IS NULL AND (@t::text IS NULL OR tenant = @t)) OR (tenant = @home AND name = @n)";

    private void BindNameOrScope(NpgsqlCommand cmd, string? name)
    {
        cmd.Parameters.AddWithValue("n", NpgsqlDbType.Text, (object?)name ?? DBNull.Value);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("home", Home);
    }

    public async Task<AlgorithmVersion?> GetAsync(string name, string version, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT {Columns} FROM {S}.algorithm_versions WHERE tenant = @t AND name = @n AND version = @v", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home);
        cmd.Parameters.AddWithValue("n", name);
        cmd.Parameters.AddWithValue("v", version);
        return (await ReadVersionsAsync(cmd, cancellationToken).ConfigureAwait(false)).SingleOrDefault();
    }

    public async Task<IReadOnlyList<AlgorithmVersion>> ListAsync(string? name, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT {Columns} FROM {S}.algorithm_versions WHERE {NameOrScope} ORDER BY name COLLATE \"C\", tenant COLLATE \"C\", pushed_at DESC, version COLLATE \"C\"", cancellationToken).ConfigureAwait(false);
        BindNameOrScope(cmd, name);
        return await ReadVersionsAsync(cmd, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<AlgorithmChannel>> ChannelsAsync(string? name, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT name, channel, version, percent, updated_at, updated_by, shadow, tenant FROM {S}.algorithm_channels WHERE {NameOrScope} ORDER BY name COLLATE \"C\", tenant COLLATE \"C\", channel COLLATE \"C\" DESC", cancellationToken).ConfigureAwait(false);
        BindNameOrScope(cmd, name);
        var list = new List<AlgorithmChannel>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new AlgorithmChannel(r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt32(3), r.GetFieldValue<DateTimeOffset>(4), r.GetString(5), r.GetBoolean(6))
            {
                Tenant = TenantOf(r.GetString(7), r.GetString(0)),
            });
        }

        return list;
    }

    public async Task<bool> AddAsync(AlgorithmVersion v, Func<CancellationToken, Task> ensureTarball, CancellationToken cancellationToken, long? storedBytes = null)
    {
        var tenant = (_tenant ?? v.Tenant).Value;
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (storedBytes is { } limit)
        {
            // The tenant's lock, then the digest's (a delete takes the digest's only): the sum and the insert are one step.
            await using var sum = new NpgsqlCommand($"""
                SELECT pg_advisory_xact_lock({TenantLock}, hashtext(@t));
                SELECT coalesce(sum(size_bytes), 0)::bigint, coalesce(bool_or(digest = @d), false)
                FROM (SELECT DISTINCT ON (digest) digest, size_bytes FROM {S}.algorithm_versions WHERE tenant = @t) d;
                """, conn, tx);
            sum.Parameters.AddWithValue("t", tenant);
            sum.Parameters.AddWithValue("d", v.Digest);
            await using (var r = await sum.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                await r.NextResultAsync(cancellationToken).ConfigureAwait(false);
                await r.ReadAsync(cancellationToken).ConfigureAwait(false);
                var (stored, has) = (r.GetInt64(0), r.GetBoolean(1));
                if (!has && stored + v.SizeBytes > limit)
                {
                    throw Tenancy.QuotaExceededException.StoredBytes(stored, v.SizeBytes, limit);
                }
            }
        }

        await LockAsync(conn, tx, v.Digest, cancellationToken).ConfigureAwait(false);
        await ensureTarball(cancellationToken).ConfigureAwait(false);
        await using (var ins = new NpgsqlCommand($"""
            INSERT INTO {S}.algorithm_versions ({Columns}) VALUES (@n, @v, @d, @size, @by, @at, @notes, @tags, @lock, @t)
            ON CONFLICT DO NOTHING
            """, conn, tx))
        {
            ins.Parameters.AddWithValue("t", tenant);
            ins.Parameters.AddWithValue("n", v.Name);
            ins.Parameters.AddWithValue("v", v.Version);
            ins.Parameters.AddWithValue("d", v.Digest);
            ins.Parameters.AddWithValue("size", v.SizeBytes);
            ins.Parameters.AddWithValue("by", v.PushedBy);
            ins.Parameters.AddWithValue("at", v.PushedAt);
            ins.Parameters.AddWithValue("notes", (object?)v.Notes ?? DBNull.Value);
            ins.Parameters.AddWithValue("tags", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(v.RepoTags, AlgorithmsJson.Default.IReadOnlyListString));
            ins.Parameters.AddWithValue("lock", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(v.LockDown, AlgorithmsJson.Default.IReadOnlyListString));
            if (await ins.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                return false;
            }
        }

        await using (var stable = new NpgsqlCommand($"""
            INSERT INTO {S}.algorithm_channels (tenant, name, channel, version, percent, updated_at, updated_by)
            VALUES (@t, @n, 'stable', @v, 100, @at, @by) ON CONFLICT DO NOTHING
            """, conn, tx))
        {
            stable.Parameters.AddWithValue("t", tenant);
            stable.Parameters.AddWithValue("n", v.Name);
            stable.Parameters.AddWithValue("v", v.Version);
            stable.Parameters.AddWithValue("at", v.PushedAt);
            stable.Parameters.AddWithValue("by", v.PushedBy);
            await stable.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    public async Task<AlgorithmVersion?> DeleteAsync(string name, string version, Func<string, CancellationToken, Task> deleteTarball, CancellationToken cancellationToken)
    {
        var v = await GetAsync(name, version, cancellationToken).ConfigureAwait(false);
        if (v is null)
        {
            return null;
        }

        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await LockAsync(conn, tx, v.Digest, cancellationToken).ConfigureAwait(false);
        await using (var channels = new NpgsqlCommand($"SELECT string_agg(channel, ', ' ORDER BY channel COLLATE \"C\" DESC) FROM {S}.algorithm_channels WHERE tenant = @t AND name = @n AND version = @v", conn, tx))
        {
            channels.Parameters.AddWithValue("t", Home);
            channels.Parameters.AddWithValue("n", name);
            channels.Parameters.AddWithValue("v", version);
            if (await channels.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is string named)
            {
                throw AlgorithmStoreRules.Named(name, version, named);
            }
        }

        await using (var del = new NpgsqlCommand($"DELETE FROM {S}.algorithm_versions WHERE tenant = @t AND name = @n AND version = @v", conn, tx))
        {
            del.Parameters.AddWithValue("t", Home);
            del.Parameters.AddWithValue("n", name);
            del.Parameters.AddWithValue("v", version);
            if (await del.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                return null;
            }
        }

        await using (var others = new NpgsqlCommand($"SELECT count(*) FROM {S}.algorithm_versions WHERE digest = @d", conn, tx))
        {
            others.Parameters.AddWithValue("d", v.Digest);
            if ((long)(await others.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! == 0)
            {
                await deleteTarball(v.Digest, cancellationToken).ConfigureAwait(false);
            }
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return v;
    }

    public async Task<bool> SetChannelAsync(
        string name, string channel, string? version, int percent, bool shadow, string by, DateTimeOffset now, ChannelEvent? recorded, string? onlyIfVersion, CancellationToken cancellationToken)
    {
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var cmd = version is null
            ? new NpgsqlCommand($"DELETE FROM {S}.algorithm_channels WHERE tenant = @t AND name = @n AND channel = @c AND (@only::text IS NULL OR version = @only)", conn, tx)
            : new NpgsqlCommand($"""
                INSERT INTO {S}.algorithm_channels (tenant, name, channel, version, percent, updated_at, updated_by, shadow) VALUES (@t, @n, @c, @v, @p, @at, @by, @shadow)
                ON CONFLICT (tenant, name, channel) DO UPDATE SET version = excluded.version, percent = excluded.percent, updated_at = excluded.updated_at,
                    updated_by = excluded.updated_by, shadow = excluded.shadow
                """, conn, tx))
        {
            cmd.Parameters.AddWithValue("t", Home);
            cmd.Parameters.AddWithValue("n", name);
            cmd.Parameters.AddWithValue("c", channel);
            cmd.Parameters.AddWithValue("v", NpgsqlDbType.Text, (object?)version ?? DBNull.Value);
            cmd.Parameters.AddWithValue("only", NpgsqlDbType.Text, (object?)onlyIfVersion ?? DBNull.Value);
            cmd.Parameters.AddWithValue("p", percent);
            cmd.Parameters.AddWithValue("shadow", shadow);
            cmd.Parameters.AddWithValue("at", now);
            cmd.Parameters.AddWithValue("by", by);
            try
            {
                if (await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
                {
                    return false;
                }
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ForeignKeyViolation)
            {
                throw AlgorithmStoreRules.NoVersion(name, version!, e);
            }
        }

        if (recorded is not null)
        {
            await using var ev = new NpgsqlCommand($"INSERT INTO {S}.algorithm_events (tenant, name, action, version, percent, by_whom, reason, at) VALUES (@t, @n, @a, @v, @p, @by, @r, @at)", conn, tx);
            ev.Parameters.AddWithValue("t", Home);
            ev.Parameters.AddWithValue("n", recorded.Name);
            ev.Parameters.AddWithValue("a", recorded.Action);
            ev.Parameters.AddWithValue("v", NpgsqlDbType.Text, (object?)recorded.Version ?? DBNull.Value);
            ev.Parameters.AddWithValue("p", NpgsqlDbType.Integer, (object?)recorded.Percent ?? DBNull.Value);
            ev.Parameters.AddWithValue("by", recorded.By);
            ev.Parameters.AddWithValue("r", NpgsqlDbType.Text, (object?)recorded.Reason ?? DBNull.Value);
            ev.Parameters.AddWithValue("at", recorded.At);
            await ev.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    public async Task<IReadOnlyList<ChannelEvent>> EventsAsync(string? name, int limit, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT name, action, version, percent, by_whom, reason, at, tenant FROM {S}.algorithm_events WHERE {NameOrScope} ORDER BY at DESC, id DESC LIMIT @l", cancellationToken).ConfigureAwait(false);
        BindNameOrScope(cmd, name);
        cmd.Parameters.AddWithValue("l", limit);
        var list = new List<ChannelEvent>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new ChannelEvent(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.IsDBNull(3) ? null : r.GetInt32(3),
                r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.GetFieldValue<DateTimeOffset>(6))
            {
                Tenant = TenantOf(r.GetString(7), r.GetString(0)),
            });
        }

        return list;
    }

    /// <summary>The route in one query.</summary>
    public async Task<AlgorithmRoute?> RouteAsync(string name, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            SELECT c.channel, c.version, v.digest, c.percent, c.shadow, c.updated_at
            FROM {S}.algorithm_channels c JOIN {S}.algorithm_versions v ON v.tenant = c.tenant AND v.name = c.name AND v.version = c.version
            WHERE c.tenant = @t AND c.name = @n
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", Home);
        cmd.Parameters.AddWithValue("n", name);
        AlgorithmVersionRef? stable = null, canary = null;
        var percent = 0;
        var shadow = false;
        DateTimeOffset? since = null;
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var v = new AlgorithmVersionRef(r.GetString(1), r.GetString(2));
            if (r.GetString(0) == AlgorithmReference.Stable)
            {
                stable = v;
            }
            else
            {
                (canary, percent, shadow, since) = (v, r.GetInt32(3), r.GetBoolean(4), r.GetFieldValue<DateTimeOffset>(5));
            }
        }

        return stable is null ? null : new AlgorithmRoute(name, stable, canary, percent, shadow, since);
    }

    public async Task RecordLoadAsync(ImageLoad load, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"INSERT INTO {S}.image_loads (digest, worker, source, seconds, bytes, loaded_at, tenant) VALUES (@d, @w, @s, @sec, @b, @at, @t)", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", (_tenant ?? load.Tenant).Value);
        cmd.Parameters.AddWithValue("d", load.Digest);
        cmd.Parameters.AddWithValue("w", load.Worker);
        cmd.Parameters.AddWithValue("s", load.Source);
        cmd.Parameters.AddWithValue("sec", load.Seconds);
        cmd.Parameters.AddWithValue("b", load.Bytes);
        cmd.Parameters.AddWithValue("at", load.LoadedAt);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TenantId>> DigestTenantsAsync(string digest, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT tenant FROM {S}.algorithm_versions WHERE digest = @d AND (@t::text IS NULL OR tenant = @t) GROUP BY tenant ORDER BY tenant COLLATE \"C\"", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("d", digest);
        var list = new List<TenantId>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(TenantOf(r.GetString(0), digest));
        }

        return list;
    }

    public async Task<IReadOnlyList<ImageLoad>> LoadsAsync(string? digest, int limit, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT digest, worker, source, seconds, bytes, loaded_at, tenant FROM {S}.image_loads WHERE (@d::text IS NULL OR digest = @d) AND (@t::text IS NULL OR tenant = @t) ORDER BY loaded_at DESC, id DESC LIMIT @l", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("t", NpgsqlDbType.Text, Scope);
        cmd.Parameters.AddWithValue("d", NpgsqlDbType.Text, (object?)digest ?? DBNull.Value);
        cmd.Parameters.AddWithValue("l", limit);
        var list = new List<ImageLoad>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new ImageLoad(r.GetString(0), r.GetString(1), r.GetString(2), r.GetDouble(3), r.GetInt64(4), r.GetFieldValue<DateTimeOffset>(5))
            {
                Tenant = TenantOf(r.GetString(6), r.GetString(0)),
            });
        }

        return list;
    }

    private static async Task LockAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string digest, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({DigestLock}, hashtext(@d))", conn, tx);
        cmd.Parameters.AddWithValue("d", digest);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private static async Task<List<AlgorithmVersion>> ReadVersionsAsync(NpgsqlCommand cmd, CancellationToken ct)
    {
        var list = new List<AlgorithmVersion>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(new AlgorithmVersion(
                r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3), r.GetString(4), r.GetFieldValue<DateTimeOffset>(5),
                r.IsDBNull(6) ? null : r.GetString(6),
                JsonSerializer.Deserialize(r.GetString(7), AlgorithmsJson.Default.ListString) ?? [],
                JsonSerializer.Deserialize(r.GetString(8), AlgorithmsJson.Default.ListString) ?? [])
            {
                Tenant = TenantOf(r.GetString(9), r.GetString(0)),
            });
        }

        return list;
    }

    private static TenantId TenantOf(string text, string what) =>
        TenantId.TryParse(text) ?? throw new InvalidDataException($"algorithm catalog row {what}: the tenant column holds '{text}', which is not a tenant name");
}
