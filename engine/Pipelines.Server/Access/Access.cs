using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;

namespace Pipelines.Server.Access;

/// <summary>The names of the server's authentication schemes, policies and claims.</summary>
internal static class Access
{
    public const string Scheme = "pipelines";
    public const string CookieScheme = "pipelines-cookie";
    public const string ReadPolicy = "read";
    public const string FullPolicy = "full";
    public const string KeyIdClaim = "pipelines:key";
    public const string CookieName = "pipelines_session";

    public static string Who(ClaimsPrincipal user) => user.Identity?.Name ?? "anonymous";

    public static bool CanChange(ClaimsPrincipal user) => user.IsInRole(nameof(KeyRole.Full).ToLowerInvariant());
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

    public static ClaimsPrincipal Principal(string name, KeyRole role, string? keyId, string scheme)
    {
        var claims = new List<Claim>
        {
            new(ClaimTypes.Name, name),
            new(ClaimTypes.Role, role.ToString().ToLowerInvariant()),
        };
        if (keyId is not null)
        {
            claims.Add(new Claim(Access.KeyIdClaim, keyId));
        }

        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }

    public static ClaimsPrincipal Principal(AccessKey key, string scheme) => Principal(key.Name, key.Role, IdOf(key.Key), scheme);

    /// <summary>A key's id in a session cookie: a prefix of its hash, never the key.</summary>
    private static string IdOf(string key) => Convert.ToHexStringLower(Hash(key))[..16];

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
