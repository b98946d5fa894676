using System.ComponentModel;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Hosting;
using Pipelines.Lineage;
using Pipelines.RunStore;
using Pipelines.Storage;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines lineage URI [--row N | --key VALUE] [--json]`: what produced a task output, a log, a results file or one of its rows.</summary>
public sealed class LineageCommand : AsyncCommand<LineageCommand.Settings>
{
    public const string Schema = "pipelines.lineage/1";

    public sealed class Settings : CommonSettings
    {
        [CommandArgument(0, "<URI>")]
        [Description("A task output, a task log or a gathered results file of a run: a local path or an s3:// URI.")]
        public string Uri { get; init; } = "";

        [CommandOption("--row <N>")]
        [Description("For a results file: the row to explain, counted from 1.")]
        public long? Row { get; init; }

        [CommandOption("--key <VALUE>")]
        [Description("For a results file: the row whose key column (the first, or --column) has this value.")]
        public string? Key { get; init; }

        [CommandOption("--column <NAME>")]
        [Description("The column --key looks in (default: the table's first column).")]
        public string? Column { get; init; }

        [CommandOption("--json")]
        [Description("Print the answer as JSON, for scripts (schema pipelines.lineage/1, docs/cli.md).")]
        public bool Json { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var config = EngineHost.Configuration(settings.Config);
        using var host = EngineHost.Build(config, worker: false);
        IRunStore? store = null;
        if (EngineHost.UsesPostgres(config))
        {
            // With the run store, a run still going (no provenance file yet) answers too. The start
            // makes the tables (Hosting/SchemaSetup): on a new database, no run is there rather than no table.
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
            store = host.Services.GetRequiredService<IRunStore>();
        }

        var lineage = new LineageService(host.Services.GetRequiredService<ObjectStoreFactory>(), store);
        var answer = await lineage.ExplainAsync(new LineageRequest(settings.Uri, settings.Row, settings.Key, settings.Column), cancellationToken).ConfigureAwait(false);
        if (settings.Json)
        {
            JsonOut.WriteJson(Schema, answer.ToJson());
        }
        else
        {
            Console.Write(LineageText.Format(answer));
        }

        return Cli.Ok;
    }
}
