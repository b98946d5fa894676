using Npgsql;

namespace Pipelines.RunStore;

/// <summary>
/// The server's ASP.NET Core data protection keys, which seal the dashboard's login cookies, in
/// the run store's schema: one row per key as the XML the key manager writes. Kept in PostgreSQL
/// rather than the process's home folder so that a restarted server (a new container) still
/// opens the sessions it sealed, and every server of the cluster opens every other's.
/// </summary>
public sealed class PostgresDataProtectionKeys
{
    private readonly SchemaGate _db;

    public PostgresDataProtectionKeys(NpgsqlDataSource dataSource, string schema = "pipelines") => _db = new SchemaGate(dataSource, schema, Tables);

    /// <summary>The keys' table; made by Hosting/PostgresSchema.</summary>
    internal static SchemaPart Tables { get; } = new("data protection keys", 1, s => $"""
            CREATE TABLE IF NOT EXISTS {s}.data_protection_keys (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                name text NOT NULL,
                xml text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now());
            """);

    // The key manager's repository interface is synchronous: it reads once per key ring
    // refresh (a day, or an unknown key) and writes once per new key (90 days).

    /// <summary>Every key ever stored, oldest first (the key manager decides which are still valid).</summary>
    public IReadOnlyList<string> ReadAll()
    {
        using var cmd = _db.CommandAsync($"SELECT xml FROM {_db.Schema}.data_protection_keys ORDER BY id", CancellationToken.None).AsTask().GetAwaiter().GetResult();
        using var reader = cmd.ExecuteReader();
        var keys = new List<string>();
        while (reader.Read())
        {
            keys.Add(reader.GetString(0));
        }

        return keys;
    }

    /// <summary>Stores a new key (written once, never changed: a revocation is a new element).</summary>
    public void Add(string name, string xml)
    {
        using var cmd = _db.CommandAsync($"INSERT INTO {_db.Schema}.data_protection_keys (name, xml) VALUES (@name, @xml)", CancellationToken.None).AsTask().GetAwaiter().GetResult();
        cmd.Parameters.AddWithValue("name", name);
        cmd.Parameters.AddWithValue("xml", xml);
        cmd.ExecuteNonQuery();
    }
}
