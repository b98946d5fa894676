using System.Text.RegularExpressions;

namespace Pipelines.Tenancy;

/// <summary>
/// Who a run, a function, a trigger or an algorithm belongs to: a lower-case name of 1 to 40
/// letters, digits and hyphens, starting with a letter or digit (docs/tenants.md). It goes into
/// keys, owner strings, SQL parameters and messages, so nothing else is ever a tenant.
/// </summary>
[System.Text.Json.Serialization.JsonConverter(typeof(TenantIdJsonConverter))]
public readonly partial record struct TenantId
{
    private readonly string? _value;

    private TenantId(string value) => _value = value;

    /// <summary>The one tenant of a server with no <c>Tenants</c> section, and the owner of everything made before tenants existed.</summary>
    public static TenantId Default { get; } = new("default");

    /// <summary>The name; a default-initialised value is the default tenant.</summary>
    public string Value => _value ?? "default";

    public bool IsDefault => Value == "default";

    /// <summary>The tenant named <paramref name="text"/>, or null when it is not a valid name.</summary>
    public static TenantId? TryParse(string? text) => text is not null && Pattern().IsMatch(text) ? new TenantId(text) : null;

    /// <summary>The tenant named <paramref name="text"/>; a name that is not valid is refused, naming <paramref name="where"/> it was written.</summary>
    public static TenantId Parse(string? text, string where) => TryParse(text)
        ?? throw new PipelinesException($"{where}: '{text}' is not a tenant name: write 1 to 40 lower-case letters, digits and hyphens, starting with a letter or digit (e.g. lab-a)", retryHelps: false);

    public override string ToString() => Value;

    public bool Equals(TenantId other) => string.Equals(Value, other.Value, StringComparison.Ordinal);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Value);

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,39}$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
