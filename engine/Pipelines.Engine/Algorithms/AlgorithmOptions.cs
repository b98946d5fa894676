using Microsoft.Extensions.Configuration;

namespace Pipelines.Algorithms;

/// <summary>Where algorithm images are kept and how big one may be (configuration section Algorithms).</summary>
public sealed record AlgorithmOptions
{
    /// <summary>The object store of image tarballs: s3://bucket/prefix or a local folder; null when none is configured.</summary>
    public string? Store { get; init; }

    /// <summary>The largest image tarball a push accepts.</summary>
    public long MaxImageBytes { get; init; } = 4L * 1024 * 1024 * 1024;

    /// <summary>Where tarballs are held while they are checked, pushed or loaded; the system's temporary folder by default.</summary>
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

    public string ScratchFolder => Scratch ?? Path.Combine(Path.GetTempPath(), "pipelines-algorithms");

    public static AlgorithmOptions From(IConfiguration config)
    {
        var o = config.GetSection("Algorithms").Get<AlgorithmOptions>() ?? new AlgorithmOptions();
        var registries = config.GetSection("Algorithms:Registries").GetChildren()
            .ToDictionary(c => c.Key, c => c.Get<RegistryCredentials>() ?? new RegistryCredentials(), StringComparer.OrdinalIgnoreCase);
        return o with { Store = string.IsNullOrWhiteSpace(o.Store) ? null : o.Store, Registries = registries };
    }
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
