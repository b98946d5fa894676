using System.ComponentModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipelines.Hosting;
using Pipelines.Model;
using Pipelines.Triggers;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>The trigger commands' shared start: PostgreSQL is required, and the host's start makes the ledger's tables.</summary>
internal static class TriggerHost
{
    public static async Task<IHost> StartAsync(CommonSettings settings, string what, CancellationToken ct)
    {
        var config = EngineHost.Configuration(settings.Config);
        if (!EngineHost.UsesPostgres(config))
        {
            throw new PipelinesException($"{what} needs PostgreSQL (triggers keep their ledger there): set PIPELINES_POSTGRES (or Postgres in pipelines.json) to the connection string", retryHelps: false);
        }

        var host = EngineHost.Build(config, worker: false);
        try
        {
            await host.StartAsync(ct).ConfigureAwait(false);
            return host;
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }
}

/// <summary>`pipelines register FILE`: from now on, new objects under trigger.uri start runs of the workflow.</summary>
public sealed class RegisterCommand : AsyncCommand<RegisterCommand.Settings>
{
    public sealed class Settings : WorkflowSettings
    {
        [CommandOption("--process-existing")]
        [Description("Treat the objects already under trigger.uri as new work too (by default they are recorded and left alone).")]
        public bool ProcessExisting { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var (yaml, dir) = await WorkflowFile.ReadAsync(settings.File, cancellationToken).ConfigureAwait(false);
        using var host = await TriggerHost.StartAsync(settings, "`pipelines register`", cancellationToken).ConfigureAwait(false);
        var r = await host.Services.GetRequiredService<TriggerRegistrar>()
            .RegisterAsync(yaml, settings.File, dir, settings.Set, settings.ProcessExisting, cancellationToken).ConfigureAwait(false);
        var t = r.Trigger;
        Console.WriteLine($"registered {t.Name}: watching {t.Uri} ({string.Join(", ", t.Include)}), settle {Quantities.FormatDuration(t.Settle)}");
        if (r.Listed)
        {
            Console.WriteLine(r.ProcessExisting
                ? $"  {r.Existing} object(s) already there are new work too (--process-existing)"
                : $"  {r.Existing} object(s) already there are left alone; objects that land from now on start runs");
        }
        else
        {
            Console.WriteLine("  updated: the ledger and checkpoint of the same trigger.uri are kept");
        }

        Console.WriteLine($"  recurring job {t.RecurringJobId} (full reconciliation); runs start in processes with the triggers role (`pipelines worker`)");
        return Cli.Ok;
    }
}

/// <summary>`pipelines unregister NAME`: stop triggering the workflow; its ledger goes, its runs stay.</summary>
public sealed class UnregisterCommand : AsyncCommand<UnregisterCommand.Settings>
{
    public sealed class Settings : CommonSettings
    {
        [CommandArgument(0, "<NAME>")]
        [Description("The workflow's name.")]
        public string Name { get; init; } = "";
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        using var host = await TriggerHost.StartAsync(settings, "`pipelines unregister`", cancellationToken).ConfigureAwait(false);
        if (!await host.Services.GetRequiredService<TriggerRegistrar>().UnregisterAsync(settings.Name, cancellationToken).ConfigureAwait(false))
        {
            throw new PipelinesException($"no workflow {settings.Name} is registered", retryHelps: false);
        }

        Console.WriteLine($"unregistered {settings.Name}");
        return Cli.Ok;
    }
}

/// <summary>`pipelines triggers [--json]`: every registered trigger with its last poll, objects seen and runs started, from PostgreSQL or a server.</summary>
public sealed class TriggersCommand : AsyncCommand<TriggersCommand.Settings>
{
    public const string Schema = "pipelines.triggers/1";

    public sealed class Settings : RunSourceSettings
    {
        [CommandOption("--json")]
        [Description("Print the triggers as JSON (schema pipelines.triggers/1, docs/cli.md).")]
        public bool Json { get; init; }
    }

    /// <summary>The triggers as --json prints them.</summary>
    internal sealed record TriggersDocument(IReadOnlyList<TriggerSummary> Triggers);

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        IReadOnlyList<TriggerSummary> list;
        if (Remote.ServerOf(settings) is not null)
        {
            using var client = Remote.Client(settings);
            list = await client.GetTriggersAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            using var host = await TriggerHost.StartAsync(settings, "`pipelines triggers`", cancellationToken).ConfigureAwait(false);
            list = await host.Services.GetRequiredService<PostgresTriggerStore>().SummariesAsync(cancellationToken).ConfigureAwait(false);
        }

        if (settings.Json)
        {
            JsonOut.Write(Schema, new TriggersDocument(list));
            return Cli.Ok;
        }

        if (list.Count == 0)
        {
            Console.WriteLine("no triggers registered (`pipelines register FILE` registers a workflow with a trigger block)");
            return Cli.Ok;
        }

        var now = DateTimeOffset.UtcNow;
        foreach (var t in list)
        {
            Console.WriteLine($"{t.Name}: {t.Uri}, settle {Quantities.FormatDuration(t.Settle)}, registered {t.RegisteredAt.UtcDateTime:u}");
            Console.WriteLine(t.LastPollAt is { } p
                ? $"  last poll:    {p.UtcDateTime:u} ({Ago(now - p)} ago, {t.LastPollMode}, {t.LastPollListed} listed)"
                : "  last poll:    never");
            Console.WriteLine($"  objects seen: {t.ObjectsSeen} ({t.Pending} pending), {t.Baseline} there before registration, {t.Rejected} rejected");
            Console.WriteLine($"  runs started: {t.RunsStarted}" + (t.LastRunId is null ? "" : $", last {t.LastRunId} at {t.LastRunAt!.Value.UtcDateTime:u}") + (t.BatchesFailed > 0 ? $"; {t.BatchesFailed} could not start" : ""));
            if (t.LastError is not null)
            {
                Console.WriteLine($"  last error:   {t.LastError} ({t.LastErrorAt?.UtcDateTime:u})");
            }
        }

        return Cli.Ok;
    }

    private static string Ago(TimeSpan d) => d.TotalSeconds < 120 ? $"{Math.Max(0, d.TotalSeconds):0}s" : d.TotalMinutes < 120 ? $"{d.TotalMinutes:0}m" : $"{d.TotalHours:0}h";
}

/// <summary>
/// `pipelines triggers ingest FILE|-`: feeds one S3 event notification body to the same code a
/// webhook endpoint calls, and prints its answer. Exit 0 when the body was an event (each record
/// is accepted, a duplicate, ignored or rejected, with the reason), 1 when it is malformed.
/// </summary>
public sealed class IngestCommand : AsyncCommand<IngestCommand.Settings>
{
    public sealed class Settings : CommonSettings
    {
        [CommandArgument(0, "<FILE>")]
        [Description("A file holding the event's JSON body, or - for standard input.")]
        public string File { get; init; } = "";
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var body = settings.File == "-"
            ? await Console.In.ReadToEndAsync(cancellationToken).ConfigureAwait(false)
            : System.IO.File.Exists(settings.File)
                ? await System.IO.File.ReadAllTextAsync(settings.File, cancellationToken).ConfigureAwait(false)
                : throw new PipelinesException($"{settings.File} does not exist", retryHelps: false);
        using var host = await TriggerHost.StartAsync(settings, "`pipelines triggers ingest`", cancellationToken).ConfigureAwait(false);
        var result = await host.Services.GetRequiredService<S3EventIngest>().HandleAsync(body, cancellationToken).ConfigureAwait(false);
        if (result.Malformed)
        {
            Console.Error.WriteLine("error: " + result.Summary);
            return Cli.Failed;
        }

        Console.WriteLine(result.Summary);
        foreach (var n in result.Notes)
        {
            Console.WriteLine("  " + n);
        }

        return Cli.Ok;
    }
}
