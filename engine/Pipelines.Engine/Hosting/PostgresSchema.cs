using Npgsql;
using Pipelines.Algorithms;
using Pipelines.Functions;
using Pipelines.RunStore;
using Pipelines.Triggers;

namespace Pipelines.Hosting;

/// <summary>
/// The one owner of the project's own tables in PostgreSQL: creates or upgrades every store's
/// <see cref="SchemaPart"/> under one advisory lock, once when a process starts
/// (<see cref="SchemaSetup"/>), never on a request. The stores only check that their part is there
/// (RunStore/SchemaGate). Here, above every store, because it lists them all.
/// </summary>
internal sealed class PostgresSchema(NpgsqlDataSource dataSource, string schema = "pipelines")
{
    /// <summary>
    /// The advisory lock that orders all of the engine's DDL on a database: these tables and
    /// Hangfire's (Hosting/HangfireSchema), so two processes starting at once never race on
    /// CREATE SCHEMA or CREATE TABLE ... IF NOT EXISTS.
    /// </summary>
    public const long Lock = 7310021;

    /// <summary>Every store's tables, in the order they are created: a new store adds its part here.</summary>
    public static IReadOnlyList<SchemaPart> Parts { get; } =
    [
        PostgresRunStore.Tables,
        PostgresTriggerStore.Tables,
        PostgresFunctionStore.Tables,
        PostgresAlgorithmStore.Tables,
        PostgresDataProtectionKeys.Tables,
        Quotas.PostgresTenantLimits.Tables,
    ];

    /// <summary>Creates the schema and every part, or upgrades them; safe to call again and from many processes at once.</summary>
    public async Task CreateAsync(CancellationToken cancellationToken)
    {
        await using var conn = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

        // Held to the commit: the second process waits, then finds everything made.
        await ExecAsync(conn, tx, $"SELECT pg_advisory_xact_lock({Lock})", cancellationToken).ConfigureAwait(false);
        await ExecAsync(conn, tx, $"""
            CREATE SCHEMA IF NOT EXISTS {schema};
            CREATE TABLE IF NOT EXISTS {schema}.{SchemaGate.VersionsTable} (part text PRIMARY KEY, version int NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
            """, cancellationToken).ConfigureAwait(false);
        foreach (var part in Parts)
        {
            await ExecAsync(conn, tx, part.Ddl(schema), cancellationToken).ConfigureAwait(false);
            await using var record = new NpgsqlCommand($"""
                INSERT INTO {schema}.{SchemaGate.VersionsTable} (part, version) VALUES (@p, @v)
                ON CONFLICT (part) DO UPDATE SET version = excluded.version, updated_at = now()
                WHERE {SchemaGate.VersionsTable}.version < excluded.version
                """, conn, tx);
            record.Parameters.AddWithValue("p", part.Name);
            record.Parameters.AddWithValue("v", part.Version);
            await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task ExecAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }
}
