using Hangfire.PostgreSql;
using Npgsql;
using Pipelines.RunStore;

namespace Pipelines.Hosting;

/// <summary>
/// Installs or upgrades Hangfire's schema once per process start, under the advisory lock that
/// orders all of the engine's DDL (<see cref="PostgresSchema.Lock"/>, also held while the
/// project's own tables are made). Hangfire.PostgreSql's installer takes no lock: two processes
/// starting at once on an empty database raced, and the loser logged a stack trace before its
/// retry succeeded. The storage is then built with PrepareSchemaIfNecessary off.
/// </summary>
internal static class HangfireSchema
{
    /// <remarks>PostgreSQL's own errors go on as they are: the CLI's one-line message for them names the server and the setting.</remarks>
    public static void Install(NpgsqlDataSource dataSource, string schema)
    {
        using var conn = dataSource.OpenConnection();
        using (var lockCmd = new NpgsqlCommand($"SELECT pg_advisory_lock({PostgresSchema.Lock})", conn))
        {
            lockCmd.ExecuteNonQuery();
        }

        try
        {
            PostgreSqlObjectsInstaller.Install(conn, schema);
        }
        finally
        {
            using var unlock = new NpgsqlCommand($"SELECT pg_advisory_unlock({PostgresSchema.Lock})", conn);
            unlock.ExecuteNonQuery();
        }
    }
}
