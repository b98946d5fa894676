using System.ComponentModel;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipelines.Harvest;
using Pipelines.Hosting;
using Pipelines.Queue;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines workers [--json]`: every live worker's harvesting figures (docs/harvesting.md), from PostgreSQL or a server.</summary>
public sealed class WorkersCommand : AsyncCommand<WorkersCommand.Settings>
{
    public const string Schema = "pipelines.workers/1";

    public sealed class Settings : RunSourceSettings
    {
        [CommandOption("--json")]
        [Description("Print the workers as JSON (schema pipelines.workers/1, docs/cli.md).")]
        public bool Json { get; init; }
    }

    /// <summary>The workers as --json prints them: each worker's name and figures.</summary>
    internal sealed record WorkersDocument(IReadOnlyList<WorkerDocument> Workers);

    internal sealed record WorkerDocument(string Worker, HarvestStatus Status);

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var workers = await ReadAsync(settings, cancellationToken).ConfigureAwait(false);
        if (settings.Json)
        {
            JsonOut.Write(Schema, new WorkersDocument(workers.Select(w => new WorkerDocument(w.Worker, w.Status)).ToList()));
            return Cli.Ok;
        }

        if (workers.Count == 0)
        {
            Console.WriteLine("no live worker");
            return Cli.Ok;
        }

        Console.WriteLine(Line("worker", "policy", "owner cpu", "harvested", "owner mem", "running", "suspended", "vacated", "harvested 1h"));
        foreach (var (name, s) in workers)
        {
            var hour = s.History.Count > 0 ? s.History.Average(p => p.HarvestedCpu) : 0;
            Console.WriteLine(Line(
                name,
                s.Policy + (s.Draining ? " (draining)" : ""),
                s.Latest is { } l ? $"{l.OwnerCpu:0.00}/{l.Cores}" : "-",
                s.Latest is { } m ? $"{m.OursCpu:0.00}" : "-",
                s.Latest is { } o ? $"{o.OwnerMemory / 1048576.0:0} MiB" : "-",
                s.Running.ToString(CultureInfo.InvariantCulture),
                s.Suspended.ToString(CultureInfo.InvariantCulture),
                s.Vacated.ToString(CultureInfo.InvariantCulture),
                $"{hour:0.00} cores"));
        }

        return Cli.Ok;
    }

    private static async Task<IReadOnlyList<(string Worker, HarvestStatus Status)>> ReadAsync(Settings settings, CancellationToken ct)
    {
        if (Remote.ServerOf(settings) is not null)
        {
            using var client = Remote.Client(settings);
            return (await client.GetWorkersAsync(ct).ConfigureAwait(false)).Select(w => (w.Worker, w.Status)).ToList();
        }

        var config = EngineHost.Configuration(settings.Config);
        if (!EngineHost.UsesPostgres(config))
        {
            throw new PipelinesException("`pipelines workers` reads the workers' figures from PostgreSQL: set PIPELINES_POSTGRES (or Postgres in pipelines.json), or ask a server with --server", retryHelps: false);
        }

        using var host = EngineHost.Build(config, worker: false);
        await host.StartAsync(cancellationToken: ct).ConfigureAwait(false);
        try
        {
            return HarvestBoard.Read(host.Services.GetRequiredService<IWorkerBoard>());
        }
        finally
        {
            await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static string Line(params string[] cells) =>
        string.Join("  ", cells.Select((c, i) => i == 0 ? c.PadRight(28) : c.PadLeft(12)));
}
