using Microsoft.Extensions.Configuration;
using Pipelines.Tenancy;

namespace Pipelines.Server;

/// <summary>What one `pipelines server` process does; chosen by configuration (Server:Roles).</summary>
[Flags]
public enum ServerRoles
{
    None = 0,

    /// <summary>The REST API under /api and its OpenAPI document.</summary>
    Api = 1,

    /// <summary>The Hangfire dashboard at /hangfire with the Runs page, and the login form.</summary>
    Dashboard = 2,

    /// <summary>A Hangfire server that runs task and gather jobs.</summary>
    Worker = 4,

    /// <summary>Reserved for workflow triggers, which are built separately.</summary>
    Triggers = 8,

    All = Api | Dashboard | Worker | Triggers,
}

/// <summary>
/// What a key may do: read (view its tenant's objects), full (also submit, cancel, delete
/// them), admin (full over every tenant, and the cluster's own pages: docs/tenants.md).
/// </summary>
public enum KeyRole { Read, Full, Admin }

/// <summary>One configured access key (Server:Keys:N:Key, :Role, optional :Name and :Tenant).</summary>
public sealed record AccessKey(string Key, KeyRole Role, string Name)
{
    /// <summary>The tenant the key belongs to: what it sees, and where an admin key creates unless it names another.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;

    // A record's ToString prints every member; the key itself is left out of it.
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append("Role = ").Append(Role).Append(", Name = ").Append(Name).Append(", Tenant = ").Append(Tenant);
        return true;
    }
}

/// <summary>The server's settings, read once at start (configuration section Server).</summary>
public sealed record ServerOptions(ServerRoles Roles, IReadOnlyList<AccessKey> Keys, string Urls, string? Bucket)
{
    public const string DefaultUrls = "http://127.0.0.1:8080";

    public bool KeysConfigured => Keys.Count > 0;

    /// <summary>The server's tenants (the engine's <c>Tenants</c> section, read once by EngineSettings).</summary>
    public TenantOptions Tenants { get; init; } = TenantOptions.None;

    /// <summary>
    /// What a key may do here: its role, except that on a server without tenants a full key is
    /// also admin (there is no other tenant to keep apart, and the cluster's pages stay open to
    /// it as before tenants existed).
    /// </summary>
    public KeyRole RoleOf(AccessKey key) => key.Role == KeyRole.Full && !Tenants.Configured ? KeyRole.Admin : key.Role;

    public static ServerOptions From(IConfiguration config, TenantOptions tenants)
    {
        var section = config.GetSection("Server");
        return new ServerOptions(ParseRoles(section["Roles"]), ParseKeys(section.GetSection("Keys"), tenants), section["Urls"] ?? DefaultUrls, section["Bucket"]) { Tenants = tenants };
    }

    /// <summary>The host names a server without keys answers (ASP.NET's AllowedHosts): loopback's only.</summary>
    public const string LoopbackHosts = "localhost;127.0.0.1;[::1]";

    /// <summary>
    /// Without a key, loopback peers have full access: the server must then listen on loopback
    /// only. Throws naming the first address beyond it and how to set a key.
    /// </summary>
    public void RefuseOpenWithoutKey(string urls)
    {
        if (!KeysConfigured && FirstBeyondLoopback(urls) is { } open)
        {
            throw new PipelinesException($"no access key is configured, so the server may listen on loopback only, not on {open}: set a key first, e.g. PIPELINES_Server__Keys__0__Key=$(openssl rand -hex 24) PIPELINES_Server__Keys__0__Role=full (docs/server.md)", retryHelps: false);
        }
    }

    /// <summary>
    /// The first of the URLs to listen on (';'-separated, as ASP.NET Core takes them) whose host is
    /// not loopback (localhost, 127.0.0.0/8, ::1), or null: <c>0.0.0.0</c>, <c>[::]</c>, <c>*</c>,
    /// <c>+</c>, a name or another address all answer beyond this machine.
    /// </summary>
    public static string? FirstBeyondLoopback(string urls)
    {
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var rest = url.Contains("://", StringComparison.Ordinal) ? url[(url.IndexOf("://", StringComparison.Ordinal) + 3)..] : url;
            var end = rest.IndexOf('/', StringComparison.Ordinal);
            var authority = end < 0 ? rest : rest[..end];
            var host = authority.StartsWith('[')
                ? authority[1..Math.Max(1, authority.IndexOf(']', StringComparison.Ordinal))]
                : authority.Split(':')[0];
            var loopback = string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)
                || (System.Net.IPAddress.TryParse(host, out var ip) && System.Net.IPAddress.IsLoopback(ip));
            if (!loopback)
            {
                return url;
            }
        }

        return null;
    }

    /// <summary>"api,dashboard" (commas or spaces); empty means every role.</summary>
    public static ServerRoles ParseRoles(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return ServerRoles.All;
        }

        var roles = ServerRoles.None;
        foreach (var word in text.Split([',', ' ', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            roles |= word.ToLowerInvariant() switch
            {
                "api" => ServerRoles.Api,
                "dashboard" => ServerRoles.Dashboard,
                "worker" => ServerRoles.Worker,
                "triggers" => ServerRoles.Triggers,
                "all" => ServerRoles.All,
                _ => throw new PipelinesException($"Server:Roles: unknown role '{word}'; write any of api, dashboard, worker, triggers", retryHelps: false),
            };
        }

        return roles;
    }

    private static List<AccessKey> ParseKeys(IConfigurationSection keys, TenantOptions tenants)
    {
        var list = new List<AccessKey>();
        foreach (var entry in keys.GetChildren())
        {
            // The key's value is never put into a message: only its position names it.
            var key = entry["Key"];
            if (string.IsNullOrWhiteSpace(key) || key.Length < 16)
            {
                throw new PipelinesException($"Server:Keys:{entry.Key}:Key must be at least 16 characters (e.g. `openssl rand -hex 24`)", retryHelps: false);
            }

            var role = entry["Role"]?.ToLowerInvariant() switch
            {
                "read" => KeyRole.Read,
                "full" => KeyRole.Full,
                "admin" => KeyRole.Admin,
                var other => throw new PipelinesException($"Server:Keys:{entry.Key}:Role is '{other}'; write read, full or admin", retryHelps: false),
            };
            var tenant = string.IsNullOrWhiteSpace(entry["Tenant"]) ? TenantId.Default : TenantId.Parse(entry["Tenant"]!.Trim(), $"Server:Keys:{entry.Key}:Tenant");
            if (!tenants.Exists(tenant))
            {
                throw new PipelinesException(
                    tenants.Configured
                        ? $"Server:Keys:{entry.Key}:Tenant is '{tenant}', which has no Tenants:{tenant} section: list the tenant, or give the key one that is listed"
                        : $"Server:Keys:{entry.Key}:Tenant is '{tenant}', but this server has no Tenants section: every key belongs to the default tenant (docs/tenants.md)",
                    retryHelps: false);
            }

            list.Add(new AccessKey(key, role, entry["Name"] ?? $"key {entry.Key}") { Tenant = tenant });
        }

        return list;
    }
}
