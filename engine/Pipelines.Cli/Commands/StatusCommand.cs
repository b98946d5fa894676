using System.ComponentModel;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Gather;
using Pipelines.Hosting;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines status RUN`: the run's state and counts, from PostgreSQL or (embedded) its run.json.</summary>
public sealed class StatusCommand : AsyncCommand<StatusCommand.Settings>
{
    public sealed class Settings : CommonSettings, IRemoteSettings
    {
        [CommandOption("--server <URL>")]
        [Description("Ask this `pipelines server` (or PIPELINES_SERVER) instead of the local configuration.")]
        public string? Server { get; init; }

        [CommandOption("--key <KEY>")]
        [Description("The server's access key (default PIPELINES_SERVER_KEY).")]
        public string? Key { get; init; }

        [CommandArgument(0, "<RUN>")]
        [Description("The run id that `pipelines run` printed.")]
        public string RunId { get; init; } = "";
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (Remote.ServerOf(settings) is not null)
        {
            using var client = Remote.Client(settings);
            return await RemoteRun.StatusAsync(client, settings.RunId, cancellationToken).ConfigureAwait(false);
        }

        var config = EngineHost.Configuration(settings.Config);
        using var host = EngineHost.Build(config, worker: false);
        var stores = host.Services.GetRequiredService<ObjectStoreFactory>();
        if (EngineHost.UsesPostgres(config))
        {
            // The start makes the tables (Hosting/SchemaSetup): on a new database, no run is there rather than no table.
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
            var store = host.Services.GetRequiredService<IRunStore>();
            var run = await store.GetRunAsync(settings.RunId, cancellationToken).ConfigureAwait(false)
                ?? throw new PipelinesException($"no run {settings.RunId} in PostgreSQL", retryHelps: false);
            var counts = await store.CountTasksAsync(run.RunId, cancellationToken).ConfigureAwait(false);
            Console.WriteLine($"run {run.RunId} ({run.WorkflowName}): {run.State.Name()}");
            Console.WriteLine($"  tasks:   {counts.Total} ({counts.Queued} queued, {counts.Running} running, {counts.Succeeded} succeeded, {counts.Cached} cached, {counts.Failed} failed, {counts.Cancelled} cancelled)");
            Console.WriteLine($"  created: {run.CreatedAt.UtcDateTime:u}" + (run.FinishedAt is { } f ? $", finished {f.UtcDateTime:u}" : ""));
            if (run.Error is not null)
            {
                Console.WriteLine($"  error:   {run.Error}");
            }

            Console.WriteLine($"  output:  {run.OutputUri}");
            return run.State == RunState.Failed ? Cli.Failed : Cli.Ok;
        }

        var outputUri = RunIndex.Find(settings.RunId)
            ?? throw new PipelinesException($"no run {settings.RunId} is known here (embedded runs are recorded in {RunIndex.Folder}; configure Postgres to see runs of other machines)", retryHelps: false);
        var output = stores.Open(outputUri);
        try
        {
            var summary = await RunSummary.ReadAsync(output, cancellationToken).ConfigureAwait(false);
            var counts = summary.Counts;
            Console.WriteLine($"run {settings.RunId} ({summary.Workflow}): {summary.Status}");
            Console.WriteLine($"  tasks:   {counts.Tasks} ({counts.Succeeded} succeeded, {counts.Cached} cached, {counts.Failed} failed, {counts.Cancelled} cancelled)");
            Console.WriteLine($"  created: {summary.CreatedAt.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)}, finished {summary.FinishedAt.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)}");
            if (summary.Error is not null)
            {
                Console.WriteLine($"  error:   {summary.Error}");
            }

            RunJsonNotes.Print(summary);
            Console.WriteLine($"  output:  {outputUri}");
            return summary.Status == RunState.Failed.Name() ? Cli.Failed : Cli.Ok;
        }
        catch (ObjectNotFoundException)
        {
            Console.WriteLine($"run {settings.RunId}: not finished (no run.json yet; an embedded run ends with the process that ran it)");
            Console.WriteLine($"  output:  {outputUri}");
            return Cli.Failed;
        }
    }
}
