using System.Text.RegularExpressions;
using Pipelines.Hosting;
using Pipelines.Settings;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Hosting;

/// <summary>
/// docs/configuration.md lists every setting once, with the default its options type writes,
/// checked against the types (<see cref="EngineSettings.Sections"/>) so that the two cannot drift.
/// </summary>
[Unit]
public sealed partial class ConfigurationDocsTests
{
    /// <summary>
    /// Settings read by their own parsers rather than the binder, since their values are lists,
    /// maps or secrets with rules of their own; each still has its row.
    /// </summary>
    private static readonly string[] ReadByTheirOwners =
    [
        "S3:Endpoint", "S3:AccessKey", "S3:SecretKey", "S3:SessionToken", "S3:Region", // Storage/S3Settings.From
        "Submit:LocalRoots", "Secrets:NAME", // Hosting/EngineSettings.Read
        "Algorithms:Registries:LABEL:Host", "Algorithms:Registries:LABEL:Username", "Algorithms:Registries:LABEL:Password", // AlgorithmOptions.From
        "Server:Urls", "Server:Roles", "Server:Keys", "Server:Bucket", // Pipelines.Server/ServerOptions.From
        "Tenants:ID:Name", "Tenants:ID:Output", "Tenants:ID:Inputs", "Tenants:ID:Share", "Tenants:ID:Quotas:KEY", "Tenants:ID:Budget:KEY", // Tenancy/TenantOptions.From
        "Tenants:ID:Secrets:NAME", // Hosting/EngineSettings.Read
        "Tenants:ID:Prices:KEY", // Usage/PriceSheets.From
    ];

    private static Dictionary<string, List<string>> Rows()
    {
        var rows = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(Path.Combine(TestEnvironment.RepoRoot, "docs", "configuration.md")))
        {
            var cells = line.Split('|');
            if (cells.Length < 5 || KeyCell().Match(cells[1].Trim()) is not { Success: true } key)
            {
                continue;
            }

            if (!rows.TryGetValue(key.Groups[1].Value, out var defaults))
            {
                rows[key.Groups[1].Value] = defaults = [];
            }

            defaults.Add(cells[3].Trim());
        }

        return rows;
    }

    [Fact]
    public void Every_setting_has_one_row_with_the_default_of_its_options_type()
    {
        var rows = Rows();
        var problems = new List<string>();
        foreach (var (section, type) in EngineSettings.Sections)
        {
            foreach (var setting in SettingsBinder.Describe(type, section))
            {
                if (!rows.TryGetValue(setting.Key, out var defaults))
                {
                    problems.Add($"no row for {setting.Key} (default `{setting.Default}`)");
                }
                else if (defaults.Count > 1)
                {
                    problems.Add($"{setting.Key} has {defaults.Count} rows");
                }
                else if (!defaults[0].Contains($"`{setting.Default}`", StringComparison.Ordinal) && !(setting.Default == "none" && defaults[0].StartsWith("none", StringComparison.Ordinal)))
                {
                    problems.Add($"{setting.Key}: the default cell '{defaults[0]}' does not say `{setting.Default}`");
                }
            }
        }

        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Every_row_is_a_setting_the_engine_reads()
    {
        var known = EngineSettings.Sections.SelectMany(s => SettingsBinder.Describe(s.Type, s.Section)).Select(s => s.Key).Concat(ReadByTheirOwners).ToHashSet(StringComparer.Ordinal);
        var stale = Rows().Keys.Where(k => !known.Contains(k)).ToList();
        Assert.True(stale.Count == 0, "rows for no setting: " + string.Join(", ", stale));
    }

    [GeneratedRegex("^`([A-Za-z][A-Za-z0-9:]*)`$")]
    private static partial Regex KeyCell();
}
