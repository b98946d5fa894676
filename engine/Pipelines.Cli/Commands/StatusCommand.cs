using System.ComponentModel;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
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
            var store = host.Services.GetRequiredService<IRunStore>();
            await store.InitializeAsync(cancellationToken).ConfigureAwait(false);
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
            using var doc = JsonDocument.Parse(await output.Store.ReadAllAsync(output.Key(RunLayout.RunJson), cancellationToken).ConfigureAwait(false));
            var root = doc.RootElement;
            var counts = root.GetProperty("counts");
            var status = root.GetProperty("status").GetString();
            Console.WriteLine($"run {settings.RunId} ({root.GetProperty("workflow").GetString()}): {status}");
            Console.WriteLine($"  tasks:   {counts.GetProperty("tasks").GetInt32()} ({counts.GetProperty("succeeded").GetInt32()} succeeded, {counts.GetProperty("cached").GetInt32()} cached, {counts.GetProperty("failed").GetInt32()} failed, {counts.GetProperty("cancelled").GetInt32()} cancelled)");
            Console.WriteLine($"  created: {root.GetProperty("created_at").GetString()}, finished {root.GetProperty("finished_at").GetString()}");
            if (root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.String)
            {
                Console.WriteLine($"  error:   {error.GetString()}");
            }

            RunJsonNotes.Print(root);
            Console.WriteLine($"  output:  {outputUri}");
            return status == "failed" ? Cli.Failed : Cli.Ok;
        }
        catch (ObjectNotFoundException)
        {
            Console.WriteLine($"run {settings.RunId}: not finished (no run.json yet; an embedded run ends with the process that ran it)");
            Console.WriteLine($"  output:  {outputUri}");
            return Cli.Failed;
        }
    }
}
