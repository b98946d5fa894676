using System.ComponentModel;
using Microsoft.Extensions.Logging;
using Pipelines.Hosting;
using Pipelines.Server;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines server`: the REST API, the dashboard and a worker in one process (roles from Server:Roles).</summary>
public sealed class ServerCommand : AsyncCommand<ServerCommand.Settings>
{
    public sealed class Settings : CommonSettings
    {
        [CommandOption("--urls <URLS>")]
        [Description("Where to listen (default Server:Urls, http://127.0.0.1:8080).")]
        public string? Urls { get; init; }

        [CommandOption("--roles <ROLES>")]
        [Description("Roles of this process: any of api, dashboard, worker, triggers (default Server:Roles, all).")]
        public string? Roles { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, string?>();
        if (settings.Roles is not null)
        {
            values["Server:Roles"] = settings.Roles;
        }

        var config = EngineHost.Configuration(settings.Config, values, reloadOnChange: true);
        var app = PipelinesServer.Build(config, settings.Urls, settings.Verbose ? LogLevel.Debug : LogLevel.Information);
        await PipelinesServer.RunAsync(app, cancellationToken).ConfigureAwait(false);
        return Cli.Ok;
    }
}
