using System.ComponentModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Harvest;
using Pipelines.Hosting;
using Pipelines.Queue;
using Pipelines.RunStore;
using Pipelines.Server.Health;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines worker`: run task and gather jobs, and the trigger role, from PostgreSQL until SIGTERM or Ctrl+C.</summary>
public sealed class WorkerCommand : AsyncCommand<WorkerCommand.Settings>
{
    public sealed class Settings : CommonSettings
    {
        [CommandOption("-w|--concurrency <N>")]
        [Description("Tasks run at once (default Worker:Concurrency, 4).")]
        public int? Concurrency { get; init; }

        [CommandOption("--roles <ROLES>")]
        [Description("What this process does, comma-separated: worker (task and gather jobs), triggers (watch buckets, start runs). Default: worker,triggers.")]
        public string Roles { get; init; } = "worker,triggers";

        [CommandOption("--policy <POLICY>")]
        [Description("When this machine lends its cycles: always, when-idle (default) or never (docs/harvesting.md).")]
        public string? Policy { get; init; }

        [CommandOption("--health-port <PORT>")]
        [Description("Serve /healthz, /readyz and /metrics on this loopback port: a number, 0 for any free one, or off (default Worker:HealthPort, 9464).")]
        public string? HealthPort { get; init; }

        [CommandOption("--drain")]
        [Description("Ask the running workers of this machine to finish their tasks and take no more, then exit.")]
        public bool Drain { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, string?>();
        if (settings.Concurrency is { } n)
        {
            values["Worker:Concurrency"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (settings.HealthPort is { } port)
        {
            values["Worker:HealthPort"] = port;
        }

        var config = EngineHost.Configuration(settings.Config, values);
        if (!EngineHost.UsesPostgres(config))
        {
            throw new PipelinesException("a worker needs PostgreSQL: set PIPELINES_POSTGRES (or Postgres in pipelines.json) to the connection string", retryHelps: false);
        }

        if (settings.Drain)
        {
            return await DrainAsync(config, cancellationToken).ConfigureAwait(false);
        }

        // A worker lends only what the owner leaves unless told otherwise: its own default, under every source; --policy over them.
        if (settings.Policy is { } policy)
        {
            values["Harvest:Policy"] = policy;
        }

        config = EngineHost.WithDefaults(EngineHost.Configuration(settings.Config, values, reloadOnChange: true), HarvestOptions.WorkerDefaults);

        var roles = settings.Roles.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
        if (roles.Count == 0 || roles.Any(r => r is not ("worker" or "triggers")))
        {
            throw new PipelinesException($"--roles '{settings.Roles}': write worker, triggers or worker,triggers", retryHelps: false);
        }

        var listen = WorkerHost.ListenOf(config);
        using var host = WorkerHost.Build(config, listen, worker: roles.Contains("worker"), triggers: roles.Contains("triggers"), settings.Verbose ? LogLevel.Information : LogLevel.Warning);
        await WorkerHost.StartAsync(host, listen, cancellationToken).ConfigureAwait(false);
        var harvest = roles.Contains("worker") ? host.Services.GetRequiredService<Harvester>() : null;
        Console.WriteLine($"worker {host.Services.GetRequiredService<Pipelines.Worker.WorkerOptions>().Name} started ({string.Join(",", roles.Order(StringComparer.Ordinal))})"
            + (harvest is null ? "" : $"; harvesting: policy {Harvester.Name(harvest.Policy)}, containers {harvest.IdleMode}")
            + (WorkerHost.AddressOf(host) is { } address ? $"; health and metrics on {address}" : "; no health listener (Worker:HealthPort off)"));
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // SIGTERM or Ctrl+C: Hangfire hands unfinished jobs back to the queue on stop.
        }

        await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
        Console.WriteLine("worker stopped");
        return Cli.Ok;
    }

    /// <summary>Asks this machine's live workers to drain, and waits until none of them runs a task.</summary>
    private static async Task<int> DrainAsync(Microsoft.Extensions.Configuration.IConfiguration config, CancellationToken ct)
    {
        using var host = EngineHost.Build(config, worker: false);
        await host.StartAsync(ct).ConfigureAwait(false);
        var board = host.Services.GetRequiredService<IWorkerBoard>();
        var prefix = Environment.MachineName + ":";
        var names = HarvestBoard.RequestDrain(board, n => n.StartsWith(prefix, StringComparison.Ordinal));
        if (names.Count == 0)
        {
            Console.WriteLine($"no live worker on {Environment.MachineName} to drain");
            return Cli.Ok;
        }

        Console.WriteLine($"draining {string.Join(", ", names)}: running tasks finish, no new task starts");
        while (true)
        {
            var left = HarvestBoard.Read(board).Where(w => names.Contains(w.Worker) && (!w.Status.Draining || w.Status.Running > 0)).ToList();
            if (left.Count == 0)
            {
                Console.WriteLine("drained: no task runs on them");
                return Cli.Ok;
            }

            await Task.Delay(TimeSpan.FromSeconds(2), ct).ConfigureAwait(false);
        }
    }
}
