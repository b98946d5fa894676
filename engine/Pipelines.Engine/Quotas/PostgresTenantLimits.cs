using Npgsql;
using Pipelines.RunStore;
using Pipelines.Tenancy;

namespace Pipelines.Quotas;

/// <summary>
/// The tenant counters of a cluster, in PostgreSQL (part "tenant limits"). A slot is a row of
/// <c>tenant_holders</c> naming the process that holds it; taking one counts and inserts under a
/// transaction advisory lock per tenant, so that acquirers in any number of processes never
/// take more than the limit. Every process beats its row of <c>tenant_processes</c>
/// (<see cref="BeatAsync"/>, every <see cref="BeatInterval"/>); the holders of a process unseen
/// for <see cref="DeadAfter"/> are swept by the next acquirer of that tenant, so a crashed server
/// gives its slots back within a minute. The token bucket is one row per tenant, refilled and
/// taken from in one upsert.
/// </summary>
internal sealed class PostgresTenantLimits : ITenantLimits
{
    /// <summary>The advisory lock class of the per-tenant counters (two-key form: this and the tenant's hash), beside the engine's 7310021-7310023.</summary>
    public const int LockClass = 7310024;

    /// <summary>How often a process says it is alive.</summary>
    public static readonly TimeSpan BeatInterval = TimeSpan.FromSeconds(10);

    /// <summary>How long a process may go unseen before its slots are given back: six beats missed.</summary>
    public static readonly TimeSpan DeadAfter = TimeSpan.FromSeconds(60);

    private readonly SchemaGate _db;

    public PostgresTenantLimits(NpgsqlDataSource dataSource, string schema = "pipelines", string? process = null)
    {
        _db = new SchemaGate(dataSource, schema, Tables);
        Process = process ?? $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}";
    }

    /// <summary>This process as its slots name it.</summary>
    public string Process { get; }

    /// <summary>The counters' tables; made by Hosting/PostgresSchema.</summary>
    internal static SchemaPart Tables { get; } = new("tenant limits", 1, s => $"""
            CREATE TABLE IF NOT EXISTS {s}.tenant_processes (
                process text PRIMARY KEY,
                seen_at timestamptz NOT NULL);
            CREATE TABLE IF NOT EXISTS {s}.tenant_holders (
                tenant text NOT NULL,
                kind text NOT NULL,
                holder text NOT NULL,
                process text NOT NULL,
                since timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant, kind, holder));
            CREATE INDEX IF NOT EXISTS tenant_holders_process ON {s}.tenant_holders (process);
            CREATE TABLE IF NOT EXISTS {s}.tenant_buckets (
                tenant text PRIMARY KEY,
                tokens double precision NOT NULL,
                updated_at timestamptz NOT NULL,
                taken boolean NOT NULL);
            """);

    public async Task<bool> TryAcquireAsync(TenantId tenant, LimitKind kind, string holder, int limit, CancellationToken cancellationToken)
    {
        var s = _db.Schema;
        await using var conn = await OpenAsync(cancellationToken).ConfigureAwait(false);

        // One round trip, one implicit transaction: the lock is held to its end, so the count and the insert see no other acquirer of the tenant.
        await using var batch = new NpgsqlBatch(conn)
        {
            BatchCommands =
            {
                Command("SELECT pg_advisory_xact_lock(@class, hashtext(@tenant))"),
                Command($"INSERT INTO {s}.tenant_processes (process, seen_at) VALUES (@process, now()) ON CONFLICT (process) DO NOTHING"),
                Command($"""
                    DELETE FROM {s}.tenant_holders h WHERE h.tenant = @tenant AND h.kind = @kind
                      AND NOT EXISTS (SELECT 1 FROM {s}.tenant_processes p WHERE p.process = h.process AND p.seen_at > now() - @dead)
                    """),
                Command($"""
                    WITH mine AS (
                        UPDATE {s}.tenant_holders SET process = @process WHERE tenant = @tenant AND kind = @kind AND holder = @holder RETURNING 1),
                    taken AS (
                        INSERT INTO {s}.tenant_holders (tenant, kind, holder, process)
                        SELECT @tenant, @kind, @holder, @process
                        WHERE NOT EXISTS (SELECT 1 FROM mine)
                          AND (SELECT count(*) FROM {s}.tenant_holders WHERE tenant = @tenant AND kind = @kind) < @limit
                        RETURNING 1)
                    SELECT EXISTS (SELECT 1 FROM mine) OR EXISTS (SELECT 1 FROM taken) AS acquired
                    """),
            },
        };
        return await RunAsync(async () =>
        {
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            // The batch's last statement answers; the lock's and the others' results come first.
            while (reader.FieldCount == 0 || reader.GetName(0) != "acquired")
            {
                if (!await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
                {
                    throw new InvalidOperationException("the tenant counter's batch gave no answer");
                }
            }

            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            return reader.GetBoolean(0);
        }).ConfigureAwait(false);

        NpgsqlBatchCommand Command(string sql) => new(sql)
        {
            Parameters =
            {
                new("class", LockClass),
                new("tenant", tenant.Value),
                new("kind", Name(kind)),
                new("holder", holder),
                new("process", Process),
                new("limit", (long)limit),
                new("dead", DeadAfter),
            },
        };
    }

    public async Task ReleaseAsync(TenantId tenant, LimitKind kind, string holder, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"DELETE FROM {_db.Schema}.tenant_holders WHERE tenant = @tenant AND kind = @kind AND holder = @holder", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("tenant", tenant.Value);
        cmd.Parameters.AddWithValue("kind", Name(kind));
        cmd.Parameters.AddWithValue("holder", holder);
        await RunAsync(() => cmd.ExecuteNonQueryAsync(cancellationToken)).ConfigureAwait(false);
    }

    public async Task<int> HeldAsync(TenantId tenant, LimitKind kind, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT count(*) FROM {_db.Schema}.tenant_holders WHERE tenant = @tenant AND kind = @kind", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("tenant", tenant.Value);
        cmd.Parameters.AddWithValue("kind", Name(kind));
        return (int)(long)(await RunAsync(() => cmd.ExecuteScalarAsync(cancellationToken)).ConfigureAwait(false))!;
    }

    public async Task<TimeSpan?> TakeAsync(TenantId tenant, int perMinute, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // TokenBucket.Refilled in SQL (the contract holds both to it): the tokens there were, plus the rate times the time since, at most the bucket's size.
        const string Refilled = "least(@size, b.tokens + greatest(0, extract(epoch FROM (@now - b.updated_at))) * @size / 60.0)";
        var s = _db.Schema;
        await using var cmd = await _db.CommandAsync($"""
            INSERT INTO {s}.tenant_buckets AS b (tenant, tokens, updated_at, taken) VALUES (@tenant, @size - 1, @now, true)
            ON CONFLICT (tenant) DO UPDATE SET
                taken = {Refilled} >= 1,
                tokens = CASE WHEN {Refilled} >= 1 THEN {Refilled} - 1 ELSE {Refilled} END,
                updated_at = greatest(b.updated_at, @now)
            RETURNING taken, tokens
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("tenant", tenant.Value);
        cmd.Parameters.AddWithValue("size", (double)perMinute);
        cmd.Parameters.AddWithValue("now", now.UtcDateTime);
        return await RunAsync<TimeSpan?>(async () =>
        {
            await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            return reader.GetBoolean(0) ? null : TokenBucket.RetryAfter(reader.GetDouble(1), perMinute);
        }).ConfigureAwait(false);
    }

    /// <summary>Says this process is alive (its slots stay held), and forgets processes unseen for a day.</summary>
    public async Task BeatAsync(CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"""
            INSERT INTO {_db.Schema}.tenant_processes (process, seen_at) VALUES (@process, now()) ON CONFLICT (process) DO UPDATE SET seen_at = now();
            DELETE FROM {_db.Schema}.tenant_processes p WHERE p.seen_at < now() - interval '1 day'
              AND NOT EXISTS (SELECT 1 FROM {_db.Schema}.tenant_holders h WHERE h.process = p.process);
            """, cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("process", Process);
        await RunAsync(() => cmd.ExecuteNonQueryAsync(cancellationToken)).ConfigureAwait(false);
    }

    private static string Name(LimitKind kind) => kind switch
    {
        LimitKind.Invocations => "invocations",
        _ => "warm",
    };

    private async Task<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken) =>
        await RunAsync(async () => await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);

    /// <summary>PostgreSQL out of reach is an outage (retry helps), which the callers wait out or answer 503, never a refusal by quota.</summary>
    private static async Task<T> RunAsync<T>(Func<Task<T>> work)
    {
        try
        {
            return await work().ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException { IsTransient: true } or TimeoutException)
        {
            throw new PipelinesException("PostgreSQL is out of reach, so the tenant's quotas cannot be counted: " + e.Message, retryHelps: true, e);
        }
    }
}
