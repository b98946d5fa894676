using System.Runtime.CompilerServices;
using Npgsql;
using NpgsqlTypes;
using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.RunStore;

/// <summary>
/// The usage ledger in PostgreSQL: table <c>usage</c>, one row per id. The run store's commit and
/// the function store's finish insert their record in their own transaction through
/// <see cref="InsertAsync"/>, the one INSERT of the ledger.
/// </summary>
internal sealed class PostgresUsageStore : IUsageStore
{
    private const string Columns = "id, tenant, kind, run_id, task_index, delivery, function, version, route, worker, started_at, ended_at, wall_seconds, cpu_seconds, peak_memory_bytes, reserved_memory_bytes, gb_seconds, bytes_in, bytes_out, harvested, outcome, reason";

    private readonly SchemaGate _db;

    public PostgresUsageStore(NpgsqlDataSource dataSource, string schema = "pipelines") => _db = new SchemaGate(dataSource, schema, Tables);

    private string S => _db.Schema;

    /// <summary>
    /// The ledger's table; made by Hosting/PostgresSchema. No foreign key to runs or functions: the
    /// ledger outlives what it counts (a deleted run was still used). Indexed for a tenant's period
    /// and for a run's records (and the claim's count of a task's deliveries).
    /// </summary>
    public static SchemaPart Tables { get; } = new("usage ledger", 1, s => $"""
            CREATE TABLE IF NOT EXISTS {s}.usage (
                id text PRIMARY KEY,
                tenant text NOT NULL,
                kind text NOT NULL,
                run_id text,
                task_index int,
                delivery int,
                function text,
                version int,
                route text,
                worker text,
                started_at timestamptz NOT NULL,
                ended_at timestamptz NOT NULL,
                wall_seconds double precision NOT NULL,
                cpu_seconds double precision,
                peak_memory_bytes bigint,
                reserved_memory_bytes bigint,
                gb_seconds double precision,
                bytes_in bigint NOT NULL DEFAULT 0,
                bytes_out bigint NOT NULL DEFAULT 0,
                harvested boolean NOT NULL DEFAULT false,
                outcome text NOT NULL,
                reason text);
            CREATE INDEX IF NOT EXISTS usage_tenant_ended ON {s}.usage (tenant, ended_at);
            CREATE INDEX IF NOT EXISTS usage_run ON {s}.usage (run_id, task_index) WHERE run_id IS NOT NULL;
        """);

    /// <summary>
    /// Inserts <paramref name="record"/> into <paramref name="schema"/>'s ledger, inside the caller's
    /// transaction (or alone), unless its id is there: true when written.
    /// </summary>
    public static async Task<bool> InsertAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, string schema, UsageRecord record, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(InsertSql(schema), conn, tx);
        Bind(cmd.Parameters, record);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
    }

    /// <summary>Inserts <paramref name="records"/> as <see cref="InsertAsync(NpgsqlConnection, NpgsqlTransaction?, string, UsageRecord, CancellationToken)"/> does each, in one round trip.</summary>
    public static async Task InsertAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, string schema, IReadOnlyList<UsageRecord> records, CancellationToken ct)
    {
        if (records.Count == 0)
        {
            return;
        }

        await using var batch = new NpgsqlBatch(conn, tx);
        foreach (var record in records)
        {
            var cmd = new NpgsqlBatchCommand(InsertSql(schema));
            Bind(cmd.Parameters, record);
            batch.BatchCommands.Add(cmd);
        }

        await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private static string InsertSql(string schema) => $"""
        INSERT INTO {schema}.usage ({Columns})
        VALUES (@id, @tenant, @kind, @run, @index, @delivery, @function, @version, @route, @worker, @started, @ended, @wall, @cpu, @peak, @reserved, @gbs, @in, @out, @harvested, @outcome, @reason)
        ON CONFLICT (id) DO NOTHING
        """;

    private static void Bind(NpgsqlParameterCollection p, UsageRecord record)
    {
        p.AddWithValue("id", record.Id);
        p.AddWithValue("tenant", record.Tenant.Value);
        p.AddWithValue("kind", record.Kind);
        p.AddWithValue("run", NpgsqlDbType.Text, (object?)record.RunId ?? DBNull.Value);
        p.AddWithValue("index", NpgsqlDbType.Integer, (object?)record.TaskIndex ?? DBNull.Value);
        p.AddWithValue("delivery", NpgsqlDbType.Integer, (object?)record.Delivery ?? DBNull.Value);
        p.AddWithValue("function", NpgsqlDbType.Text, (object?)record.Function ?? DBNull.Value);
        p.AddWithValue("version", NpgsqlDbType.Integer, (object?)record.Version ?? DBNull.Value);
        p.AddWithValue("route", NpgsqlDbType.Text, (object?)record.Route ?? DBNull.Value);
        p.AddWithValue("worker", NpgsqlDbType.Text, (object?)record.Worker ?? DBNull.Value);
        p.AddWithValue("started", record.StartedAt);
        p.AddWithValue("ended", record.EndedAt);
        p.AddWithValue("wall", record.WallSeconds);
        p.AddWithValue("cpu", NpgsqlDbType.Double, (object?)record.CpuSeconds ?? DBNull.Value);
        p.AddWithValue("peak", NpgsqlDbType.Bigint, (object?)record.PeakMemoryBytes ?? DBNull.Value);
        p.AddWithValue("reserved", NpgsqlDbType.Bigint, (object?)record.ReservedMemoryBytes ?? DBNull.Value);
        p.AddWithValue("gbs", NpgsqlDbType.Double, (object?)record.GbSeconds ?? DBNull.Value);
        p.AddWithValue("in", record.BytesIn);
        p.AddWithValue("out", record.BytesOut);
        p.AddWithValue("harvested", record.Harvested);
        p.AddWithValue("outcome", record.Outcome);
        p.AddWithValue("reason", NpgsqlDbType.Text, (object?)record.Reason ?? DBNull.Value);
    }

    public async Task<bool> RecordAsync(UsageRecord record, CancellationToken cancellationToken)
    {
        await using var conn = await _db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await InsertAsync(conn, null, S, record, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<UsageRecord>> ForRunAsync(string runId, CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT {Columns} FROM {S}.usage WHERE run_id = @run ORDER BY task_index, delivery, id", cancellationToken).ConfigureAwait(false);
        cmd.Parameters.AddWithValue("run", runId);
        var list = new List<UsageRecord>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(Read(r));
        }

        return list;
    }

    /// <summary>UsageQuery.Matches, in SQL (the usage store contract holds both to one behaviour).</summary>
    private const string Where = """
        WHERE (@tenant::text IS NULL OR tenant = @tenant) AND (@from::timestamptz IS NULL OR ended_at >= @from) AND (@to::timestamptz IS NULL OR ended_at < @to)
          AND (@run::text IS NULL OR run_id = @run) AND (@function::text IS NULL OR function = @function)
        """;

    private static void Bind(NpgsqlParameterCollection p, UsageQuery q)
    {
        p.AddWithValue("tenant", NpgsqlDbType.Text, (object?)q.Tenant?.Value ?? DBNull.Value);
        p.AddWithValue("from", NpgsqlDbType.TimestampTz, (object?)q.From ?? DBNull.Value);
        p.AddWithValue("to", NpgsqlDbType.TimestampTz, (object?)q.To ?? DBNull.Value);
        p.AddWithValue("run", NpgsqlDbType.Text, (object?)q.RunId ?? DBNull.Value);
        p.AddWithValue("function", NpgsqlDbType.Text, (object?)q.Function ?? DBNull.Value);
    }

    public async Task<IReadOnlyList<UsageRow>> AggregateAsync(UsageQuery query, CancellationToken cancellationToken)
    {
        // Sums only: the sheet is linear, so C# prices the sums (PriceSheet) and no price is written here.
        await using var cmd = await _db.CommandAsync($"""
            SELECT date_trunc(@by, ended_at AT TIME ZONE 'UTC') AS bucket, tenant, kind, outcome, harvested,
                   count(*), sum(wall_seconds), coalesce(sum(cpu_seconds), 0), coalesce(sum(gb_seconds), 0), sum(bytes_in)::bigint, sum(bytes_out)::bigint
            FROM {S}.usage {Where}
            GROUP BY 1, 2, 3, 4, 5
            ORDER BY 1, tenant COLLATE "C", kind COLLATE "C", outcome COLLATE "C", harvested
            """, cancellationToken).ConfigureAwait(false);
        Bind(cmd.Parameters, query);
        cmd.Parameters.AddWithValue("by", query.By == UsageBucket.Hour ? "hour" : "day");
        var rows = new List<UsageRow>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var bucket = new DateTimeOffset(DateTime.SpecifyKind(r.GetDateTime(0), DateTimeKind.Utc));
            rows.Add(new UsageRow(bucket, TenantOf(r.GetString(1)), r.GetString(2), r.GetString(3), r.GetBoolean(4),
                new UsageFigures(r.GetInt64(5), r.GetDouble(6), r.GetDouble(7), r.GetDouble(8), r.GetInt64(9), r.GetInt64(10))));
        }

        return rows;
    }

    public async IAsyncEnumerable<UsageRecord> RecordsAsync(UsageQuery query, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var cmd = await _db.CommandAsync($"SELECT {Columns} FROM {S}.usage {Where} ORDER BY ended_at, id COLLATE \"C\"", cancellationToken).ConfigureAwait(false);
        Bind(cmd.Parameters, query);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return Read(r);
        }
    }

    private static TenantId TenantOf(string text) =>
        TenantId.TryParse(text) ?? throw new InvalidDataException($"the usage ledger's tenant column holds '{text}', which is not a tenant name");

    private static UsageRecord Read(NpgsqlDataReader r)
    {
        T? N<T>(int i) where T : struct => r.IsDBNull(i) ? null : r.GetFieldValue<T>(i);
        string? S(int i) => r.IsDBNull(i) ? null : r.GetString(i);
        return new UsageRecord(r.GetString(0), TenantOf(r.GetString(1)), r.GetString(2), r.GetFieldValue<DateTimeOffset>(10), r.GetFieldValue<DateTimeOffset>(11), r.GetString(20))
        {
            RunId = S(3),
            TaskIndex = N<int>(4),
            Delivery = N<int>(5),
            Function = S(6),
            Version = N<int>(7),
            Route = S(8),
            Worker = S(9),
            WallSeconds = r.GetDouble(12),
            CpuSeconds = N<double>(13),
            PeakMemoryBytes = N<long>(14),
            ReservedMemoryBytes = N<long>(15),
            GbSeconds = N<double>(16),
            BytesIn = r.GetInt64(17),
            BytesOut = r.GetInt64(18),
            Harvested = r.GetBoolean(19),
            Reason = S(21),
        };
    }
}
