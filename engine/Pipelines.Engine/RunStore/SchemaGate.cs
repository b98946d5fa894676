using Npgsql;

namespace Pipelines.RunStore;

/// <summary>
/// A store's check, before its first statement, that <see cref="PostgresSchema"/> has made its
/// tables at its version: a clear refusal that says what to do instead of PostgreSQL's
/// "relation does not exist". Once passed, a flag; a failed check is tried again next time.
/// </summary>
internal sealed class SchemaGate(NpgsqlDataSource dataSource, string schema, SchemaPart part)
{
    private volatile bool _passed;

    public ValueTask PassAsync(CancellationToken cancellationToken) =>
        _passed ? ValueTask.CompletedTask : CheckAsync(cancellationToken);

    private async ValueTask CheckAsync(CancellationToken ct)
    {
        int? version;
        try
        {
            await using var cmd = dataSource.CreateCommand($"SELECT version FROM {schema}.{PostgresSchema.VersionsTable} WHERE part = @p");
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
