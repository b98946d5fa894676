using System.ComponentModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Hosting;
using Pipelines.RunStore;
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
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, string?>();
        if (settings.Concurrency is { } n)
        {
            values["Worker:Concurrency"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var config = EngineHost.Configuration(settings.Config, values);
        if (!EngineHost.UsesPostgres(config))
        {
            throw new PipelinesException("a worker needs PostgreSQL: set PIPELINES_POSTGRES (or Postgres in pipelines.json) to the connection string", retryHelps: false);
        }

        var roles = settings.Roles.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
        if (roles.Count == 0 || roles.Any(r => r is not ("worker" or "triggers")))
        {
            throw new PipelinesException($"--roles '{settings.Roles}': write worker, triggers or worker,triggers", retryHelps: false);
        }

        using var host = EngineHost.Build(config, worker: roles.Contains("worker"), settings.Verbose ? LogLevel.Information : LogLevel.Warning, triggers: roles.Contains("triggers"));
        await host.StartAsync(cancellationToken).ConfigureAwait(false);
        Console.WriteLine($"worker {host.Services.GetRequiredService<Pipelines.Worker.WorkerOptions>().Name} started ({string.Join(",", roles.Order(StringComparer.Ordinal))})");
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
}
