using Microsoft.Extensions.Configuration;
using Pipelines.Settings;

namespace Pipelines.Algorithms;

/// <summary>Where algorithm images are kept and how big one may be (configuration section Algorithms).</summary>
public sealed record AlgorithmOptions
{
    /// <summary>The object store of image tarballs: s3://bucket/prefix or a local folder; null when none is configured.</summary>
    public string? Store { get; init; }

    /// <summary>The largest image tarball a push accepts.</summary>
    [Bytes]
    [Positive]
    public long MaxImageBytes { get; init; } = 4L * 1024 * 1024 * 1024;

    /// <summary>Where tarballs are held while they are checked, pushed or loaded; the system's temporary folder by default.</summary>
    [DefaultText("$TMPDIR/pipelines-algorithms")]
    public string? Scratch { get; init; }

    /// <summary>
    /// Credentials of registries that images named with a registry are pulled from, by registry
    /// host, or by any label with the host in <see cref="RegistryCredentials.Host"/> (a host with
    /// a port, <c>registry.local:5000</c>, cannot be a configuration key: ':' separates sections).
    /// </summary>
    public IReadOnlyDictionary<string, RegistryCredentials> Registries { get; init; } = new Dictionary<string, RegistryCredentials>();

    /// <summary>The credentials for a registry host, or null when none are configured.</summary>
    public RegistryCredentials? Credentials(string host) =>
        Registries.Values.FirstOrDefault(c => string.Equals(c.Host, host, StringComparison.OrdinalIgnoreCase))
        ?? (Registries.TryGetValue(host, out var byKey) && byKey.Host is null ? byKey : null);

    /// <summary>When a function's canary is rolled back automatically (Algorithms:Canary).</summary>
    public CanaryOptions Canary { get; init; } = new();

    public string ScratchFolder => Scratch ?? Path.Combine(Path.GetTempPath(), "pipelines-algorithms");

    public static AlgorithmOptions From(IConfiguration config)
    {
        var o = SettingsBinder.Bind<AlgorithmOptions>(config, "Algorithms");
        var registries = config.GetSection("Algorithms:Registries").GetChildren()
            .ToDictionary(c => c.Key, c => c.Get<RegistryCredentials>() ?? new RegistryCredentials(), StringComparer.OrdinalIgnoreCase);
        return o with { Registries = registries };
    }
}

/// <summary>
/// The canary guard's margins (Flagger's success-rate and latency checks are the model): over the
/// last <see cref="Window"/> (and only since the canary was set), once the canary has served
/// <see cref="MinRequests"/> invocations of a function, it is aborted when its error rate is over
/// stable's by more than <see cref="MaxErrorRateIncrease"/>, or when its p95 latency is over
/// stable's times <see cref="MaxP95Ratio"/> and by more than <see cref="MaxP95IncreaseMs"/>.
/// </summary>
[SettingsSection]
public sealed record CanaryOptions
{
    [Positive]
    public TimeSpan Window { get; init; } = TimeSpan.FromMinutes(5);

    [Positive]
    public int MinRequests { get; init; } = 20;

    /// <summary>A fraction: 0.05 allows the canary 5 points more errors than stable.</summary>
    [Between(0, 1)]
    public double MaxErrorRateIncrease { get; init; } = 0.05;

    [Between(1, double.MaxValue)]
    public double MaxP95Ratio { get; init; } = 1.5;

    [Between(0, double.MaxValue)]
    public double MaxP95IncreaseMs { get; init; } = 100;

    /// <summary>False turns the automatic rollback off (the figures are still shown).</summary>
    public bool AutoRollback { get; init; } = true;
}

/// <summary>A registry's user and password (or token), for pulls.</summary>
public sealed record RegistryCredentials
{
    /// <summary>The registry's host (and port) when it is not the entry's key.</summary>
    public string? Host { get; init; }

    public string? Username { get; init; }

    public string? Password { get; init; }

    // A record prints every member; the password never reaches a message or a log.
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append("Host = ").Append(Host).Append(", Username = ").Append(Username);
        return true;
    }
}
