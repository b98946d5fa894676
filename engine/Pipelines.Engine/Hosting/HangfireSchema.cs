using Hangfire.PostgreSql;
using Npgsql;

namespace Pipelines.Hosting;

/// <summary>
/// Installs or upgrades Hangfire's schema once per process start, under the advisory lock the
/// run store and the trigger store take for their own schemas. Hangfire.PostgreSql's installer
/// takes no lock: two processes starting at once on an empty database raced, and the loser
/// logged a stack trace before its retry succeeded. The storage is then built with
/// PrepareSchemaIfNecessary off.
/// </summary>
internal static class HangfireSchema
{
    /// <summary>The key of pg_advisory_xact_lock in PostgresRunStore and PostgresTriggerStore.</summary>
    private const long SchemaLock = 7310021;

    /// <remarks>PostgreSQL's own errors go on as they are: the CLI's one-line message for them names the server and the setting.</remarks>
    public static void Install(NpgsqlDataSource dataSource, string schema)
    {
        using var conn = dataSource.OpenConnection();
        using (var lockCmd = new NpgsqlCommand($"SELECT pg_advisory_lock({SchemaLock})", conn))
        {
            lockCmd.ExecuteNonQuery();
        }

        try
        {
            PostgreSqlObjectsInstaller.Install(conn, schema);
        }
        finally
        {
            using var unlock = new NpgsqlCommand($"SELECT pg_advisory_unlock({SchemaLock})", conn);
            unlock.ExecuteNonQuery();
        }
    }
}
