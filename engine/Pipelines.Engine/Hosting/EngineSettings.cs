using Microsoft.Extensions.Configuration;
using Pipelines.Algorithms;
using Pipelines.Containers;
using Pipelines.Functions;
using Pipelines.Harvest;
using Pipelines.Queue;
using Pipelines.Settings;
using Pipelines.Storage;
using Pipelines.Telemetry;
using Pipelines.Triggers;
using Pipelines.Worker;

namespace Pipelines.Hosting;

/// <summary>
/// Every setting of the engine, read once from the configuration when a host is wired, so that a
/// value it cannot use stops the process before anything starts, with one line naming the
/// setting (<see cref="SettingsBinder"/>). The parts get their options by constructor; none reads
/// the configuration itself.
/// </summary>
public sealed record EngineSettings(
    DatabaseOptions Database,
    HangfireOptions Hangfire,
    WorkerOptions Worker,
    DockerOptions Docker,
    HarvestOptions Harvest,
    LoggingOptions Logging,
    TelemetryOptions Telemetry,
    TriggerOptions Triggers,
    FunctionsOptions Functions,
    AlgorithmOptions Algorithms,
    S3Settings S3,
    Runs.LocalRoots LocalRoots,
    Tenancy.TenantOptions Tenants)
{
    /// <summary>The sections bound by <see cref="SettingsBinder"/>, with their options types: what docs/configuration.md is checked against.</summary>
    public static IReadOnlyList<(string Section, Type Type)> Sections { get; } =
    [
        ("", typeof(DatabaseOptions)),
        ("Hangfire", typeof(HangfireOptions)),
        ("Worker", typeof(WorkerOptions)),
        ("Docker", typeof(DockerOptions)),
        ("Harvest", typeof(HarvestOptions)),
        ("Logging", typeof(LoggingOptions)),
        ("Telemetry", typeof(TelemetryOptions)),
        ("Triggers", typeof(TriggerOptions)),
        ("Functions", typeof(FunctionsOptions)),
        ("Algorithms", typeof(AlgorithmOptions)),
        ("Tenancy", typeof(Tenancy.TenancyOptions)),
        ("Prices", typeof(Usage.PriceSheet)),
    ];

    /// <summary>Reads and checks every section (the PostgreSQL connection string too, never quoting it); throws a <see cref="PipelinesException"/> naming the first setting it cannot use.</summary>
    public static EngineSettings Read(IConfiguration config)
    {
        var harvest = SettingsBinder.Bind<HarvestOptions>(config, "Harvest");
        var worker = SettingsBinder.Bind<WorkerOptions>(config, "Worker") with
        {
            Secrets = SecretsOf(config.GetSection("Secrets")),
            TenantSecrets = config.GetSection("Tenants").GetChildren()
                .Where(t => t.GetSection("Secrets").Exists())
                .ToDictionary(t => Tenancy.TenantId.Parse(t.Key, $"Tenants:{t.Key}"), t => (IReadOnlyDictionary<string, string>)SecretsOf(t.GetSection("Secrets"))),
        };
        var database = SettingsBinder.Bind<DatabaseOptions>(config, "");
        var localRoots = new Runs.LocalRoots(config.GetSection("Submit:LocalRoots").GetChildren().Select(c => c.Value).OfType<string>().Where(v => v.Length > 0).ToArray());
        return new EngineSettings(
            database with { Postgres = EngineHost.PostgresOf(database.Postgres) },
            HangfireOptions.From(config),
            worker,
            SettingsBinder.Bind<DockerOptions>(config, "Docker") with { IdleClass = Harvester.Parse(harvest.Policy, HarvestPolicy.Always) != HarvestPolicy.Always },
            harvest,
            SettingsBinder.Bind<LoggingOptions>(config, "Logging"),
            TelemetryOptions.From(config),
            TriggerOptions.From(config),
            FunctionsOptions.From(config),
            AlgorithmOptions.From(config),
            S3Settings.From(config),
            localRoots,
            Tenancy.TenantOptions.From(config, localRoots.Allows))
        {
            Prices = Usage.PriceSheets.From(config),
            Source = config,
        };
    }

    /// <summary>
    /// The configuration these settings were read from, for the few parts that follow its changes
    /// (the tenants' budgets: Quotas/TenantBudgets.Follow); everything else is read once, here.
    /// </summary>
    public IConfiguration? Source { get; init; }

    /// <summary>Each tenant's price sheet (<c>Prices</c>, <c>Tenants:ID:Prices</c>).</summary>
    public Usage.PriceSheets Prices { get; init; } = Usage.PriceSheets.None;

    private static Dictionary<string, string> SecretsOf(IConfigurationSection section) =>
        section.GetChildren().Where(c => c.Value is not null).ToDictionary(c => c.Key, c => c.Value!, StringComparer.OrdinalIgnoreCase);
}
