using Pipelines.Settings;

namespace Pipelines.Hosting;

/// <summary>Where the stores live (the configuration's root keys Postgres and Schema), read once at start.</summary>
public sealed record DatabaseOptions
{
    /// <summary>
    /// Npgsql's connection string (PIPELINES_POSTGRES); none: the embedded mode, every store in
    /// memory. Checked by <see cref="EngineHost"/>, which never quotes it.
    /// </summary>
    public string? Postgres { get; init; }

    /// <summary>The schema of every store's tables (runs, triggers, functions, the algorithm catalog).</summary>
    [Matches("^[a-z_][a-z0-9_]{0,62}$", "a PostgreSQL schema name (lower-case letters, digits and _)")]
    public string Schema { get; init; } = "pipelines";
}
