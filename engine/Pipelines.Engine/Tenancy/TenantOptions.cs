using Microsoft.Extensions.Configuration;
using Pipelines.Settings;

namespace Pipelines.Tenancy;

/// <summary>
/// The tenants of a server (configuration section <c>Tenants:&lt;id&gt;</c>, read once at start,
/// docs/tenants.md). With no such section the server is single-tenant: everything belongs to
/// <see cref="TenantId.Default"/> and behaves as before tenants existed. With one, the default
/// tenant still exists (it owns what was made before), listed or not, and every other tenant
/// names its own output folder; no tenant's output folder overlaps another tenant's folders
/// (two tenants may read one input folder).
/// </summary>
public sealed class TenantOptions
{
    private readonly Dictionary<TenantId, TenantSettings> _tenants;

    private readonly TenantSettings _defaultOnly;

    private TenantOptions(Dictionary<TenantId, TenantSettings> tenants, TenancyOptions tenancy)
    {
        _tenants = tenants;
        Tenancy = tenancy;
        _defaultOnly = new(TenantId.Default, "default", null, []) { Share = tenancy.Defaults.Share, Quotas = tenancy.Defaults.Quotas, Budget = tenancy.Defaults.Budget };
    }

    /// <summary>A server without a <c>Tenants</c> section and with no quotas: the default tenant alone.</summary>
    public static TenantOptions None { get; } = new([], new TenancyOptions());

    /// <summary>The <c>Tenancy</c> section: fair share and the defaults every tenant's settings are read over.</summary>
    public TenancyOptions Tenancy { get; }

    /// <summary>Whether the configuration lists tenants (otherwise the server is single-tenant).</summary>
    public bool Configured => _tenants.Count > 0;

    /// <summary>Every tenant, the default one included, by id.</summary>
    public IEnumerable<TenantSettings> All =>
        (_tenants.ContainsKey(TenantId.Default) ? _tenants.Values : _tenants.Values.Append(_defaultOnly)).OrderBy(t => t.Id.Value, StringComparer.Ordinal);

    /// <summary>Whether <paramref name="tenant"/> exists on this server (the default one always does).</summary>
    public bool Exists(TenantId tenant) => tenant.IsDefault || _tenants.ContainsKey(tenant);

    /// <summary>The tenant's settings; the default one's are empty when it is not listed. Throws for a tenant that does not exist.</summary>
    public TenantSettings Settings(TenantId tenant) =>
        _tenants.TryGetValue(tenant, out var s) ? s
        : tenant.IsDefault ? _defaultOnly
        : throw new InvalidOperationException($"tenant {tenant} is not configured");

    /// <summary>
    /// Reads <c>Tenants</c>, refusing at start (naming the key) a tenant id that is not valid, a
    /// tenant other than default without <c>Output</c>, a location that is not an s3 folder or a
    /// local folder that <paramref name="localAllowed"/> (Submit:LocalRoots) admits, and two
    /// tenants whose folders overlap.
    /// </summary>
    public static TenantOptions From(IConfiguration config, Func<string, bool> localAllowed)
    {
        var tenancy = SettingsBinder.Bind<TenancyOptions>(config, "Tenancy");
        var tenants = new Dictionary<TenantId, TenantSettings>();
        var where = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var section in config.GetSection("Tenants").GetChildren())
        {
            var id = TenantId.Parse(section.Key, $"Tenants:{section.Key}");
            var output = Location(section.GetSection("Output"));
            if (output is null && !id.IsDefault)
            {
                throw new PipelinesException($"Tenants:{id}:Output is unset: every tenant but default writes under a folder of its own (e.g. s3://{id}/ or s3://data/{id}/)", retryHelps: false);
            }

            var inputs = section.GetSection("Inputs").GetChildren().Select(Location).OfType<string>().ToList();
            var name = section["Name"] is { Length: > 0 } n ? n.Trim() : id.Value;
            var own = SettingsBinder.Bind<TenancyDefaults>(config, $"Tenants:{id}");
            var settings = new TenantSettings(id, name, output, inputs)
            {
                Share = section["Share"] is { Length: > 0 } ? own.Share : tenancy.Defaults.Share,
                Quotas = own.Quotas.Over(tenancy.Defaults.Quotas),

                // Key by key, as the quotas: a tenant that sets only its amount keeps the default period.
                Budget = new BudgetSettings
                {
                    Amount = own.Budget.Amount ?? tenancy.Defaults.Budget.Amount,
                    Period = section["Budget:Period"] is { Length: > 0 } ? own.Budget.Period : tenancy.Defaults.Budget.Period,
                },
            };
            foreach (var (location, key) in settings.Locations.Zip(Keys(section, settings)))
            {
                foreach (var (other, otherKey) in where)
                {
                    // Two tenants may read one folder (a shared reference), but nobody else's folder may hold or be held by a tenant's output.
                    var anOutput = key.EndsWith(":Output", StringComparison.Ordinal) || otherKey.EndsWith(":Output", StringComparison.Ordinal);
                    if (anOutput && !otherKey.StartsWith($"Tenants:{id}:", StringComparison.Ordinal) && TenantLocations.Overlaps(location, other))
                    {
                        throw new PipelinesException($"{key}: '{location}' overlaps {otherKey} ('{other}'): a tenant's output folder may not hold, or be held by, another tenant's folders", retryHelps: false);
                    }
                }

                where.TryAdd(location, key);
            }

            tenants[id] = settings;
        }

        return new TenantOptions(tenants, tenancy);

        string? Location(IConfigurationSection entry)
        {
            if (string.IsNullOrWhiteSpace(entry.Value))
            {
                return null;
            }

            var text = entry.Value.Trim();
            var folder = TenantLocations.Folder(text)
                ?? throw new PipelinesException($"{entry.Path}: '{text}' is not a folder: write s3://bucket/ or s3://bucket/prefix/, or an absolute local folder under Submit:LocalRoots", retryHelps: false);
            return folder.StartsWith("s3://", StringComparison.Ordinal) || localAllowed(folder)
                ? folder
                : throw new PipelinesException($"{entry.Path}: '{text}' is a local folder outside Submit:LocalRoots: a tenant's local folders must be under one of them", retryHelps: false);
        }
    }

    private static IEnumerable<string> Keys(IConfigurationSection section, TenantSettings settings) =>
        (settings.Output is null ? [] : new[] { $"Tenants:{settings.Id}:Output" })
            .Concat(section.GetSection("Inputs").GetChildren().Where(c => !string.IsNullOrWhiteSpace(c.Value)).Select(c => $"Tenants:{settings.Id}:Inputs:{c.Key}"));
}
