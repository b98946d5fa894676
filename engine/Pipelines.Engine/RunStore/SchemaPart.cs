namespace Pipelines.RunStore;

/// <summary>
/// One store's tables in the project's PostgreSQL schema, for Hosting/PostgresSchema to
/// create: the DDL for a schema name (safe to run again, so an upgrade is more of it) and its
/// version, raised whenever the DDL changes, so that a store refuses tables older than its code.
/// </summary>
/// <param name="Name">How messages name the tables, e.g. "run store".</param>
public sealed record SchemaPart(string Name, int Version, Func<string, string> Ddl);
