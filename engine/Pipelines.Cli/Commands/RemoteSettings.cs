namespace Pipelines.Cli.Commands;

/// <summary>The options of commands that can talk to a `pipelines server` instead of running in-process.</summary>
internal interface IRemoteSettings
{
    /// <summary>The server's base URL (--server, or PIPELINES_SERVER).</summary>
    string? Server { get; }

    /// <summary>The access key (--key, or PIPELINES_SERVER_KEY).</summary>
    string? Key { get; }

    /// <summary>The tenant an admin key works in (--tenant, or PIPELINES_TENANT); a tenant's own key needs none.</summary>
    string? Tenant { get; }
}

internal static class Remote
{
    public static string? ServerOf(IRemoteSettings s) =>
        s.Server ?? (Environment.GetEnvironmentVariable("PIPELINES_SERVER") is { Length: > 0 } url ? url : null);

    /// <summary>What --tenant says, one text for every verb that has it.</summary>
    public const string TenantHelp = "With an admin key: work in this tenant (default PIPELINES_TENANT; unset: every tenant for reads, the key's own for changes). A tenant's key works in its own tenant only.";

    public static ServerClient Client(IRemoteSettings s) => Client(s, ServerOf(s)!);

    /// <summary>A client of <paramref name="server"/> with the settings' key and tenant.</summary>
    public static ServerClient Client(IRemoteSettings s, string server) => new(server, ServerClient.KeyFrom(s.Key), TenantOf(s));

    /// <summary>--tenant, or PIPELINES_TENANT, checked as the server checks it (so a typo fails here, naming the option).</summary>
    public static Pipelines.Tenancy.TenantId? TenantOf(IRemoteSettings s) =>
        (s.Tenant ?? (Environment.GetEnvironmentVariable("PIPELINES_TENANT") is { Length: > 0 } t ? t : null)) is { } text
            ? Pipelines.Tenancy.TenantId.Parse(text.Trim(), s.Tenant is null ? "PIPELINES_TENANT" : "--tenant")
            : null;
}
