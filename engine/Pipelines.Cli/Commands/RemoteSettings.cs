namespace Pipelines.Cli.Commands;

/// <summary>The options of commands that can talk to a `pipelines server` instead of running in-process.</summary>
internal interface IRemoteSettings
{
    /// <summary>The server's base URL (--server, or PIPELINES_SERVER).</summary>
    string? Server { get; }

    /// <summary>The access key (--key, or PIPELINES_SERVER_KEY).</summary>
    string? Key { get; }
}

internal static class Remote
{
    public static string? ServerOf(IRemoteSettings s) =>
        s.Server ?? (Environment.GetEnvironmentVariable("PIPELINES_SERVER") is { Length: > 0 } url ? url : null);

    public static ServerClient Client(IRemoteSettings s) => new(ServerOf(s)!, ServerClient.KeyFrom(s.Key));
}
