using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Pipelines.Tenancy;

namespace Pipelines.Server.Access;

/// <summary>The names of the server's authentication schemes, policies and claims, and what a caller reaches.</summary>
internal static class Access
{
    public const string Scheme = "pipelines";
    public const string CookieScheme = "pipelines-cookie";
    public const string ReadPolicy = "read";
    public const string FullPolicy = "full";
    public const string AdminPolicy = "admin";
    public const string KeyIdClaim = "pipelines:key";
    public const string TenantClaim = "pipelines:tenant";

    /// <summary>The key's one role (read, full or admin), compared exactly when a session is checked; the role claims are cumulative.</summary>
    public const string KeyRoleClaim = "pipelines:role";
    public const string CookieName = "pipelines_session";

    /// <summary>The header (or query parameter <c>tenant</c>) by which an admin key works in one tenant.</summary>
    public const string TenantHeader = "Pipelines-Tenant";

    /// <summary>Who did something, as runs and logs record it: the key's name, and its tenant when that is not the default one.</summary>
    public static string Who(ClaimsPrincipal user)
    {
        var name = user.Identity?.Name ?? "anonymous";
        return TenantOf(user) is { IsDefault: false } tenant ? $"{name} ({tenant})" : name;
    }

    public static bool CanChange(ClaimsPrincipal user) => user.IsInRole(nameof(KeyRole.Full).ToLowerInvariant());

    public static bool IsAdmin(ClaimsPrincipal user) => user.IsInRole(nameof(KeyRole.Admin).ToLowerInvariant());

    /// <summary>The tenant of the caller's key (the default one for a principal without the claim).</summary>
    public static TenantId TenantOf(ClaimsPrincipal user) => TenantId.TryParse(user.FindFirst(TenantClaim)?.Value) ?? TenantId.Default;

    /// <summary>
    /// What the caller's requests reach: its key's tenant; for an admin key, the tenant named by
    /// <c>?tenant=</c> or the <see cref="TenantHeader"/> header, else every tenant. A name that
    /// is not a tenant name is refused (<see cref="PipelinesException"/>, a 400).
    /// </summary>
    public static TenantScope ScopeOf(ClaimsPrincipal user, HttpRequest request)
    {
        if (!IsAdmin(user))
        {
            return TenantScope.Of(TenantOf(user));
        }

        string? named = request.Query["tenant"].FirstOrDefault() ?? request.Headers[TenantHeader].FirstOrDefault();
        return string.IsNullOrWhiteSpace(named) ? TenantScope.All : TenantScope.Of(TenantId.Parse(named.Trim(), "tenant"));
    }
}

/// <summary>
/// The configured keys, kept as SHA-256 hashes. A presented key is compared with every one in
/// constant time, so neither a key's content nor its position shows in the answer's timing.
/// </summary>
internal sealed class KeyRing
{
    private readonly (byte[] Hash, string Id, AccessKey Key)[] _keys;

    public KeyRing(ServerOptions options) =>
        _keys = options.Keys.Select(k => (Hash(k.Key), IdOf(k.Key), k)).ToArray();

    public AccessKey? Find(string presented)
    {
        var hash = Hash(presented);
        AccessKey? found = null;
        foreach (var (h, _, key) in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(h, hash))
            {
                found = key;
            }
        }

        return found;
    }

    public AccessKey? FindById(string id) => _keys.FirstOrDefault(k => string.Equals(k.Id, id, StringComparison.Ordinal)).Key;

    /// <summary>
    /// A caller: its name, tenant and role. The role claims are cumulative (admin is also full
    /// and read; full is also read), so each policy asks for one role.
    /// </summary>
    public static ClaimsPrincipal Principal(string name, KeyRole role, TenantId tenant, string? keyId, string scheme)
    {
        var claims = new List<Claim>
        {
            new(ClaimTypes.Name, name),
            new(Access.TenantClaim, tenant.Value),
            new(Access.KeyRoleClaim, RoleName(role)),
        };
        claims.AddRange(Enum.GetValues<KeyRole>().Where(r => r <= role).Select(r => new Claim(ClaimTypes.Role, RoleName(r))));
        if (keyId is not null)
        {
            claims.Add(new Claim(Access.KeyIdClaim, keyId));
        }

        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }

    /// <summary>The principal of a configured key, with the role it has on this server (<see cref="ServerOptions.RoleOf"/>).</summary>
    public static ClaimsPrincipal Principal(AccessKey key, KeyRole role, string scheme) => Principal(key.Name, role, key.Tenant, IdOf(key.Key), scheme);

    public static string RoleName(KeyRole role) => role.ToString().ToLowerInvariant();

    /// <summary>A key's id in a session cookie: a prefix of its hash, never the key.</summary>
    private static string IdOf(string key) => Convert.ToHexStringLower(Hash(key))[..16];

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
