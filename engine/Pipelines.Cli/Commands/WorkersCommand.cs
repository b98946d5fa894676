using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Harvest;
using Pipelines.Hosting;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines workers`: every live worker's harvesting figures (docs/harvesting.md).</summary>
public sealed class WorkersCommand : AsyncCommand<CommonSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, CommonSettings settings, CancellationToken cancellationToken)
    {
        var config = EngineHost.Configuration(settings.Config);
        if (!EngineHost.UsesPostgres(config))
        {
            throw new PipelinesException("`pipelines workers` reads the workers' figures from PostgreSQL: set PIPELINES_POSTGRES (or Postgres in pipelines.json)", retryHelps: false);
        }

        using var host = EngineHost.Build(config, worker: false);
        await host.StartAsync(cancellationToken).ConfigureAwait(false);
        var workers = HarvestBoard.Read(host.Services.GetRequiredService<Hangfire.JobStorage>());
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

    private static string Line(params string[] cells) =>
        string.Join("  ", cells.Select((c, i) => i == 0 ? c.PadRight(28) : c.PadLeft(12)));
}
