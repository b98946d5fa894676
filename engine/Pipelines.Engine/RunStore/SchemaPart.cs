namespace Pipelines.RunStore;

/// <summary>
/// One store's tables in the project's PostgreSQL schema, for Hosting/PostgresSchema to
/// create: the DDL for a schema name (safe to run again, so an upgrade is more of it) and its
/// version, raised whenever the DDL changes, so that a store refuses tables older than its code.
/// </summary>
/// <param name="Name">How messages name the tables, e.g. "run store".</param>
internal sealed record SchemaPart(string Name, int Version, Func<string, string> Ddl)
{
    /// <summary>
    /// DDL that moves <paramref name="table"/>'s primary key to <paramref name="columns"/> when the
    /// key lacks <paramref name="marker"/> (a key cannot be changed by IF NOT EXISTS): the old key
    /// and the foreign keys that lean on it are dropped, the new key added. Safe to run again; run
    /// inside PostgresSchema's lock, so no two processes move one key.
    /// </summary>
    public static string MovePrimaryKey(string schema, string table, string columns, string marker = "tenant") => $"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
                           WHERE c.conrelid = '{schema}.{table}'::regclass AND c.contype = 'p' AND a.attname = '{marker}') THEN
                EXECUTE (SELECT format('ALTER TABLE {schema}.{table} DROP CONSTRAINT %I CASCADE', conname)
                         FROM pg_constraint WHERE conrelid = '{schema}.{table}'::regclass AND contype = 'p');
                ALTER TABLE {schema}.{table} ADD PRIMARY KEY ({columns});
            END IF;
        END $$;
        """;

    /// <summary>
    /// DDL that makes <paramref name="child"/>'s reference to <paramref name="parent"/> the one over
    /// <paramref name="columns"/> (<paramref name="onDelete"/>) when no reference between them has
    /// <paramref name="marker"/>: any older reference is dropped first. Safe to run again.
    /// </summary>
    public static string MoveForeignKey(string schema, string child, string columns, string parent, string parentColumns, string onDelete = "ON DELETE CASCADE", string marker = "tenant") => $"""
        DO $$
        DECLARE old record;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
                           WHERE c.conrelid = '{schema}.{child}'::regclass AND c.confrelid = '{schema}.{parent}'::regclass
                             AND c.contype = 'f' AND a.attname = '{marker}') THEN
                FOR old IN SELECT conname FROM pg_constraint
                           WHERE conrelid = '{schema}.{child}'::regclass AND confrelid = '{schema}.{parent}'::regclass AND contype = 'f' LOOP
                    EXECUTE format('ALTER TABLE {schema}.{child} DROP CONSTRAINT %I', old.conname);
                END LOOP;
                ALTER TABLE {schema}.{child} ADD FOREIGN KEY ({columns}) REFERENCES {schema}.{parent} ({parentColumns}) {onDelete};
            END IF;
        END $$;
        """;
}
