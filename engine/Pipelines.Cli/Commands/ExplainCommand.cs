using System.ComponentModel;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Explain;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Worker;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>
/// `pipelines explain RUN [TASK]`: whether a task was taken from the cache, and if it ran, why;
/// without TASK, the run in sum. Reaches the run as `status` does: the server (--server), the
/// run store (PostgreSQL), or an embedded run's provenance in its output folder.
/// </summary>
public sealed class ExplainCommand : AsyncCommand<ExplainCommand.Settings>
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    public sealed class Settings : RunSourceSettings
    {
        [CommandOption("--json")]
        [Description("Print JSON for scripts instead of text.")]
        public bool Json { get; init; }

        [CommandArgument(0, "<RUN>")]
        [Description("The run id that `pipelines run` printed.")]
        public string RunId { get; init; } = "";

        [CommandArgument(1, "[TASK]")]
        [Description("A task of the run: its index or its task id. Without it, the whole run.")]
        public string? Task { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (Remote.ServerOf(settings) is not null)
        {
            using var client = Remote.Client(settings);
            return settings.Task is { } remoteTask
                ? Print(await client.ExplainTaskAsync(settings.RunId, remoteTask, cancellationToken).ConfigureAwait(false), settings)
                : Print(await client.ExplainRunAsync(settings.RunId, cancellationToken).ConfigureAwait(false), settings);
        }

        var config = EngineHost.Configuration(settings.Config);
        using var host = EngineHost.Build(config, worker: false);
        IReadOnlyList<ProvenanceRow> rows;
        IReadOnlyList<TaskRecord>? tasks = null;
        if (EngineHost.UsesPostgres(config))
        {
            // Starting the host sets the schema up (Hosting/SchemaSetup), as status does.
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
            var store = host.Services.GetRequiredService<IRunStore>();
            (rows, tasks) = await Explainer.ReadRunStoreAsync(store, settings.RunId, cancellationToken).ConfigureAwait(false)
                ?? throw new NotFoundException($"no run {settings.RunId} in PostgreSQL");
        }
        else
        {
            var outputUri = RunIndex.Find(settings.RunId)
                ?? throw new NotFoundException($"no run {settings.RunId} is known here (embedded runs are recorded in {RunIndex.Folder}; configure Postgres to see runs of other machines)");
            var output = host.Services.GetRequiredService<ObjectStoreFactory>().Open(outputUri);
            try
            {
                rows = await Explainer.ReadRunFolderAsync(output, host.Services.GetRequiredService<WorkerOptions>().Scratch, cancellationToken).ConfigureAwait(false);
            }
            catch (ObjectNotFoundException)
            {
                throw new PipelinesException($"run {settings.RunId} has not finished: its provenance (in {outputUri}) is written when it ends; an embedded run ends with the process that ran it", retryHelps: false);
            }
        }

        if (settings.Task is null)
        {
            return Print(Explainer.Run(settings.RunId, rows, tasks), settings);
        }

        return Print(
            Explainer.Task(settings.RunId, rows, tasks, settings.Task)
                ?? throw new NotFoundException($"run {settings.RunId} has no task '{settings.Task}' (give its index or its task id)"),
            settings);
    }

    /// <summary>The schema of `explain RUN TASK --json`: one task.</summary>
    public const string TaskSchema = "pipelines.explain-task/1";

    /// <summary>The schema of `explain RUN --json`: the whole run.</summary>
    public const string RunSchema = "pipelines.explain-run/1";

    private static int Print(TaskExplanation explained, Settings settings) =>
        Print(settings.Json ? (TaskSchema, JsonSerializer.Serialize(explained, Indented)) : (null, string.Join('\n', explained.Lines())));

    private static int Print(RunExplanation explained, Settings settings) =>
        Print(settings.Json ? (RunSchema, JsonSerializer.Serialize(explained, Indented)) : (null, string.Join('\n', explained.Lines())));

    private static int Print((string? Schema, string Text) output)
    {
        if (output.Schema is { } schema)
        {
            JsonOut.WriteJson(schema, output.Text);
        }
        else
        {
            Console.WriteLine(output.Text);
        }

        return Cli.Ok;
    }
}
