using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using Pipelines.Functions;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Server.Access;
using Pipelines.Server.Api;
using Pipelines.Server.Dashboard;
using Pipelines.Server.Health;
using Pipelines.Telemetry;

namespace Pipelines.Server;

/// <summary>
/// `pipelines server`: one ASP.NET Core host whose roles (api, dashboard, worker, triggers)
/// come from configuration. With PostgreSQL, the stores and Hangfire live there, shared with
/// every other server and worker of the cluster; without it (the embedded mode) this one process
/// is the whole cluster, on the in-memory stores and Hangfire.InMemory, and nothing it keeps
/// outlives it.
/// </summary>
public static partial class PipelinesServer
{
    /// <summary>Builds the web application; without PostgreSQL, refuses roles that would leave the work to other processes.</summary>
    public static WebApplication Build(IConfiguration config, string? urls = null, LogLevel logLevel = LogLevel.Information)
    {
        // The server's own defaults (it reports the queue) under every other source; then every setting read once.
        config = EngineHost.WithDefaults(config, TelemetryOptions.ServerDefaults);
        var settings = EngineSettings.Read(config);
        var options = ServerOptions.From(config, settings.Tenants);
        var postgres = EngineHost.UsesPostgres(settings);
        if (!postgres && !options.Roles.HasFlag(ServerRoles.Worker | ServerRoles.Triggers))
        {
            throw new PipelinesException(
                $"Server:Roles is {options.Roles.ToString().ToLowerInvariant()}: without PostgreSQL no other process shares this server's queue and stores, so it runs the worker and triggers roles itself (add them, or set PIPELINES_POSTGRES)",
                retryHelps: false);
        }

        var listen = urls ?? options.Urls;
        if (string.IsNullOrWhiteSpace(listen))
        {
            throw new PipelinesException("Server:Urls (or --urls) is empty: name where to listen, e.g. http://127.0.0.1:8080", retryHelps: false);
        }

        // Checked here on what is asked, and again on what was bound once listening (RunAsync):
        // Kestrel's own settings (Kestrel:Endpoints) can add addresses the URLs do not name.
        options.RefuseOpenWithoutKey(listen);

        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ApplicationName = "pipelines", ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddConfiguration(config);
        if (!options.KeysConfigured && string.IsNullOrEmpty(config["AllowedHosts"]))
        {
            // No key: loopback peers have full access, so a page elsewhere must not reach this
            // server through a name it points at 127.0.0.1 (DNS rebinding): only loopback names
            // are answered (ASP.NET's host filtering, 400 otherwise).
            builder.Configuration["AllowedHosts"] = ServerOptions.LoopbackHosts;
        }

        builder.WebHost.UseUrls(listen);

        // A request's code runs on the thread that read its bytes, and its answer is sent from the
        // thread that wrote it, where Kestrel otherwise queued each to the thread pool: two hops,
        // each waking threads, per request (docs/benchmarks.md, "A fork request at concurrency 1").
        // "Unsafe" names the case where socket reads complete on the socket engine's own thread
        // (DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS): not set here, they complete on the thread
        // pool, so no request's code holds up the reads of other connections.
        builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
        PipelinesLogging.Configure(builder.Logging, settings.Logging, logLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        // Session cookies are protected with keys kept in PostgreSQL (Access/DashboardKeyRepository),
        // or in ~/.aspnet for an embedded server; a warning that they are not encrypted at rest
        // would be printed at every start.
        builder.Logging.AddFilter("Microsoft.AspNetCore.DataProtection", LogLevel.Error);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);

        var services = builder.Services;
        services.AddSingleton(options);
        services.AddPipelinesEngine(
            settings,
            worker: options.Roles.HasFlag(ServerRoles.Worker),
            triggers: options.Roles.HasFlag(ServerRoles.Triggers),
            server: true,
            keepWarm: options.Roles.HasFlag(ServerRoles.Api) || options.Roles.HasFlag(ServerRoles.Worker));
        services.AddPipelinesAccess(options, postgres ? settings.Database.Schema : null);
        services.AddPipelinesHealth(options.Bucket, postgres);

        // /metrics for Prometheus; this process reports the queue unless Telemetry:QueueMetrics is false.
        services.AddOpenTelemetry().WithMetrics(m => m.AddPrometheusExporter());
        if (settings.Telemetry.QueueMetrics)
        {
            EngineHost.AddQueueSampler(services);
        }

        services.AddProblemDetails();
        services.AddExceptionHandler<Api.BadRequestAnswer>();
        services.AddOpenApi();
        services.AddSingleton<JobNames>();
        services.AddSingleton<Functions.RequestFolders>();
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
            o.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
            o.SerializerOptions.TypeInfoResolverChain.Insert(0, Api.ServerJson.Default);
        });

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapPipelinesHealth();

        // The metrics are every tenant's (labelled by tenant) and the machines': with tenants, an admin key's only.
        app.MapPrometheusScrapingEndpoint()
            .RequireAuthorization(options.Tenants.Configured ? Access.Access.AdminPolicy : Access.Access.ReadPolicy)
            .WithMetadata(TenantAccess.Admin);
        if (options.Roles.HasFlag(ServerRoles.Api))
        {
            app.MapOpenApi().RequireAuthorization(Access.Access.ReadPolicy).WithMetadata(TenantAccess.Open);
            app.MapRunsApi();
            app.MapTriggersApi();
            app.MapFunctionsApi();
            app.MapLineageApi();
            app.MapWorkersApi();
            app.MapAlgorithmsApi();
            app.MapUsageApi();
        }

        if (options.Roles.HasFlag(ServerRoles.Dashboard))
        {
            app.MapLogin();
            app.MapPipelinesDashboard(app.Services.GetRequiredService<JobNames>());
            app.MapGet("/", () => TypedResults.Redirect("/hangfire/runs")).WithMetadata(TenantAccess.Open).ExcludeFromDescription();
        }

        return app;
    }

    /// <summary>
    /// Starts (the tables are made first, by Hosting/SchemaSetup, before Kestrel listens), then
    /// serves until <paramref name="cancellationToken"/> fires.
    /// </summary>
    public static async Task RunAsync(WebApplication app, CancellationToken cancellationToken)
    {
        var options = app.Services.GetRequiredService<ServerOptions>();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Pipelines.Server");
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            options.RefuseOpenWithoutKey(string.Join(';', app.Urls));
        }
        catch (PipelinesException)
        {
            await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        LogStarted(log, string.Join(", ", app.Urls), options.Roles.ToString().ToLowerInvariant(), options.KeysConfigured ? $"{options.Keys.Count} key(s)" : "no keys: loopback only", ModeOf(app.Configuration));
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // SIGTERM or Ctrl+C: stop serving; Hangfire hands unfinished jobs back to the queue.
        }

        await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await app.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Where what the server keeps lives, for its start line: an embedded server says that nothing of it outlives the process.</summary>
    private static string ModeOf(IConfiguration config) => EngineHost.UsesPostgres(config)
        ? "stores: PostgreSQL"
        : "embedded mode (no PostgreSQL): runs, functions and their invocations, triggers and the algorithm catalog are kept in this process's memory "
            + "and nothing of them outlives it; run results stay in their output locations and pushed images in Algorithms:Store";

    [LoggerMessage(Level = LogLevel.Information, Message = "pipelines server listening on {Urls}; roles {Roles}; access: {Access}; {Mode}")]
    private static partial void LogStarted(ILogger logger, string urls, string roles, string access, string mode);
}
