using System.ComponentModel;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>The options of the run verbs (status, runs, cancel, logs): a server to ask instead of the local configuration.</summary>
public class RunSourceSettings : CommonSettings, IRemoteSettings
{
    [CommandOption("--server <URL>")]
    [Description("Ask this `pipelines server` (or PIPELINES_SERVER) instead of the local configuration.")]
    public string? Server { get; init; }

    [CommandOption("--key <KEY>")]
    [Description("The server's access key (default PIPELINES_SERVER_KEY).")]
    public string? Key { get; init; }

    [CommandOption("--tenant <ID>")]
    [Description(Remote.TenantHelp)]
    public string? Tenant { get; init; }
}
