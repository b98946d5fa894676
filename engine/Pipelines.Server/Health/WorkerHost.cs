using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using Pipelines.Hosting;
using Pipelines.Settings;
using Pipelines.Worker;

namespace Pipelines.Server.Health;

/// <summary>
/// The host of `pipelines worker`: the engine's worker and trigger roles, and, unless
/// Worker:HealthPort is off, a small Kestrel listener that serves /healthz, /readyz and /metrics
/// (the same checks and exporter as `pipelines server`) on Worker:HealthAddress (loopback by
/// default), so that every worker can be scraped and health-checked. The engine assembly carries
/// no ASP.NET Core (docs/architecture.md): the listener lives here, beside the server's.
/// </summary>
public static class WorkerHost
{
    /// <summary>The default port: OpenTelemetry's Prometheus exporter port.</summary>
    public const int DefaultPort = 9464;

    /// <summary>
    /// Where the listener is to listen: null when Worker:HealthPort is off. Port 0 takes any free
    /// port (said on the worker's start line): for several workers on one machine.
    /// </summary>
    public static IPEndPoint? ListenOf(IConfiguration config)
    {
        // The port's and the address's forms are checked by the binder (WorkerOptions), with the one error form of every setting.
        var worker = SettingsBinder.Bind<WorkerOptions>(config, "Worker");
        if (string.Equals(worker.HealthPort, "off", StringComparison.OrdinalIgnoreCase) || string.Equals(worker.HealthPort, "false", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        if (!IPAddress.TryParse(worker.HealthAddress, out var ip))
        {
            throw new PipelinesException($"Worker:HealthAddress: '{worker.HealthAddress}' is not an IP address (127.0.0.1, or 0.0.0.0 for every interface)", retryHelps: false);
        }

        return new IPEndPoint(ip, int.Parse(worker.HealthPort, NumberStyles.None, CultureInfo.InvariantCulture));
    }

    /// <summary>Builds the worker's host: with the listener when <paramref name="listen"/> is given, the engine's plain host otherwise.</summary>
    public static IHost Build(IConfiguration config, IPEndPoint? listen, bool worker, bool triggers, LogLevel logLevel)
    {
        if (listen is null)
        {
            // A worker serves the functions' async invocations: it keeps their min_warm containers.
            return EngineHost.Build(config, worker, logLevel, triggers, keepWarm: worker);
        }

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "pipelines", ContentRootPath = AppContext.BaseDirectory });
        var settings = EngineSettings.Read(config);
        builder.Configuration.AddConfiguration(config);
        PipelinesLogging.Configure(builder.Logging, settings.Logging, logLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.WebHost.UseKestrel(o => o.Listen(listen));
        builder.Services.AddPipelinesEngine(settings, worker, triggers, keepWarm: worker);
        builder.Services.AddPipelinesHealth(ServerOptions.From(config, settings.Tenants).Bucket, EngineHost.UsesPostgres(settings));
        builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddPrometheusExporter());

        var app = builder.Build();
        app.MapPipelinesHealth();
        app.MapPrometheusScrapingEndpoint();
        return app;
    }

    /// <summary>Starts the host; a listener that cannot bind its port is a one-line error that says what to change.</summary>
    public static async Task StartAsync(IHost host, IPEndPoint? listen, CancellationToken cancellationToken)
    {
        try
        {
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e) when (listen is not null)
        {
            throw new PipelinesException(
                $"the worker's health and metrics listener cannot listen on {listen}: {e.GetBaseException().Message}; give each worker of this machine its own port (--health-port N, 0 for any free one, or Worker:HealthPort) or turn it off (--health-port off)",
                retryHelps: false,
                e);
        }
    }

    /// <summary>The listener's address once started (with the port a 0 took), or null without one.</summary>
    public static string? AddressOf(IHost host) =>
        host.Services.GetService<IServer>()?.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
}
