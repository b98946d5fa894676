using Npgsql;

namespace Pipelines.RunStore;

/// <summary>
/// A PostgreSQL store's one way to its tables: every command and connection it hands out comes
/// after the check that Hosting/PostgresSchema has made the store's part at its version,
/// a clear refusal that says what to do instead of PostgreSQL's "relation does not exist". A
/// store keeps this and never the data source (its constructor gives the data source to the
/// gate and nothing else), so no store method can reach a table without the check.
/// Once passed, a flag; a failed check is tried again next time.
/// </summary>
internal sealed class SchemaGate(NpgsqlDataSource dataSource, string schema, SchemaPart part)
{
    /// <summary>What records each part's version, so that a store can tell its tables are there and new enough.</summary>
    internal const string VersionsTable = "schema_parts";

    private volatile bool _passed;

    /// <summary>The schema the store's tables are in, for its SQL.</summary>
    public string Schema => schema;

    /// <summary>A command on the data source (a connection of its own, opened and returned by the command).</summary>
    public async ValueTask<NpgsqlCommand> CommandAsync(string sql, CancellationToken cancellationToken)
    {
        await PassAsync(cancellationToken).ConfigureAwait(false);
        return dataSource.CreateCommand(sql);
    }

    /// <summary>An open connection, for a transaction or a session's advisory lock.</summary>
    public async ValueTask<NpgsqlConnection> OpenConnectionAsync(CancellationToken cancellationToken)
    {
        await PassAsync(cancellationToken).ConfigureAwait(false);
        return await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
    }

    private ValueTask PassAsync(CancellationToken cancellationToken) =>
        _passed ? ValueTask.CompletedTask : CheckAsync(cancellationToken);

    private async ValueTask CheckAsync(CancellationToken ct)
    {
        int? version;
        try
        {
            await using var cmd = dataSource.CreateCommand($"SELECT version FROM {schema}.{VersionsTable} WHERE part = @p");
            cmd.Parameters.AddWithValue("p", part.Name);
            version = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) as int?;
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.InvalidSchemaName)
        {
            version = null;
        }

        if (version is null || version < part.Version)
        {
            var found = version is null ? "has no tables of the " + part.Name : $"has the {part.Name}'s tables at version {version}, older than this engine's {part.Version}";
            throw new PipelinesException(
                $"PostgreSQL schema '{schema}' {found}: a pipelines worker, server or run creates and upgrades them when it starts "
                + "(PostgresSchema.CreateAsync); start one against this database, with the same Schema setting",
                retryHelps: false);
        }

        _passed = true;
    }
}
