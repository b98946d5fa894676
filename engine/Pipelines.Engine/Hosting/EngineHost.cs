using Hangfire;
using Hangfire.InMemory;
using Hangfire.PostgreSql;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using OpenTelemetry.Trace;
using Pipelines.Algorithms;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Functions;
using Pipelines.Gather;
using Pipelines.Harvest;
using Pipelines.Queue;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Settings;
using Pipelines.Storage;
using Pipelines.Telemetry;
using Pipelines.Triggers;
using Pipelines.Usage;
using Pipelines.Worker;

namespace Pipelines.Hosting;

/// <summary>
/// Wires the engine's parts for one process. With a PostgreSQL connection string (configuration
/// key Postgres, or PIPELINES_POSTGRES) every store and Hangfire live in PostgreSQL; without
/// one, every role runs in this process on Hangfire.InMemory and the in-memory stores (the
/// embedded mode), which end with it.
/// </summary>
public static class EngineHost
{
    /// <summary>
    /// The configuration: pipelines.json files, PIPELINES_* variables, then the given values. With
    /// <paramref name="reloadOnChange"/> (the long-lived processes: server, worker) the files are
    /// read again when they change (those there at start), which only what follows the configuration
    /// sees (the tenants' budgets, Quotas/TenantBudgets); a file caught half written is read again at
    /// its next change.
    /// </summary>
    public static IConfiguration Configuration(string? configFile, IEnumerable<KeyValuePair<string, string?>>? values = null, bool reloadOnChange = false)
    {
        var builder = new ConfigurationBuilder();
        var built = false;
        Json("/etc/pipelines/pipelines.json", optional: true);
        Json(Path.Combine(Directory.GetCurrentDirectory(), "pipelines.json"), optional: true);
        if (configFile is not null)
        {
            if (!File.Exists(configFile))
            {
                throw new PipelinesException($"configuration file {configFile} does not exist", retryHelps: false);
            }

            Json(Path.GetFullPath(configFile), optional: false);
        }

        var config = builder.AddEnvironmentVariables("PIPELINES_").AddInMemoryCollection(values ?? []).Build();
        built = true;
        return config;

        void Json(string path, bool optional) => builder.AddJsonFile(source =>
        {
            source.Path = path;
            source.Optional = optional;
            // Only a file there at start is watched: the watch is on its folder, and a file that is not
            // there would put it on the nearest folder that is (/etc, or /), with all below it.
            source.ReloadOnChange = reloadOnChange && File.Exists(path);
            source.ResolveFileProvider();

            // At start a file that cannot be read stops the process, naming it; a reload that cannot
            // (caught half written) is ignored rather than thrown on the watcher's thread, a crash.
            source.OnLoadException = context => context.Ignore = built;
        });
    }

    /// <summary>
    /// The configuration with a role's own defaults under every other source (e.g.
    /// <see cref="HarvestOptions.WorkerDefaults"/>): each written once, beside its setting.
    /// </summary>
    public static IConfiguration WithDefaults(IConfiguration config, IReadOnlyDictionary<string, string?> defaults) =>
        new ConfigurationBuilder().AddInMemoryCollection(defaults).AddConfiguration(config).Build();

    /// <summary>Whether a PostgreSQL connection string is configured; refuses one that Npgsql cannot read.</summary>
    public static bool UsesPostgres(IConfiguration config) => PostgresOf(SettingsBinder.Bind<DatabaseOptions>(config, "").Postgres) is not null;

    /// <summary>Whether these settings name a PostgreSQL database (the connection string was checked when they were read).</summary>
    public static bool UsesPostgres(EngineSettings settings) => settings.Database.Postgres is not null;

    /// <summary>
    /// The configured connection string, checked once here so that a bad one is a one-line error
    /// that names the setting. Npgsql's own exceptions quote values, and a password holding an
    /// unquoted ';' turns into keywords, so no part of the string is ever put into the message.
    /// </summary>
    internal static string? PostgresOf(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        try
        {
            _ = new NpgsqlConnectionStringBuilder(text);
            return text;
        }
        catch (ArgumentException e)
        {
            var known = e.ParamName is { Length: > 0 } keyword && new NpgsqlConnectionStringBuilder().ContainsKey(keyword);
            throw new PipelinesException(
                "the PostgreSQL connection string (Postgres, or PIPELINES_POSTGRES) is not valid: "
                + (known ? $"the value of {e.ParamName} cannot be used" : "write Key=value pairs separated by ';' with keywords Npgsql knows (Host, Port, Username, Password, Database, ...), and quote a value that holds ';' or '='"),
                retryHelps: false);
        }
    }

    /// <summary>
    /// Builds the host; <paramref name="worker"/> adds a Hangfire server that runs task and gather
    /// jobs, <paramref name="triggers"/> the trigger role (PostgreSQL only, docs/triggers.md),
    /// <paramref name="keepWarm"/> keeps the functions' min_warm containers (a process that serves them).
    /// </summary>
    public static IHost Build(IConfiguration config, bool worker, LogLevel logLevel = LogLevel.Warning, bool triggers = false, bool keepWarm = false)
    {
        var settings = EngineSettings.Read(config);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddConfiguration(config);
        PipelinesLogging.Configure(builder.Logging, settings.Logging, logLevel);

        builder.Services.AddPipelinesEngine(settings, worker, triggers, keepWarm: keepWarm);
        return builder.Build();
    }

    /// <summary>
    /// Makes the host's tracer provider now, as its start would: the engine's spans are made only
    /// once it listens, and a span started before it is lost with its trace id. `pipelines run`
    /// submits beside the host's start, and its submit span is the run's trace, which run.json,
    /// the provenance rows and every log line of the run carry (a run whose plan came first had
    /// none, and each task a trace of its own: LogFormatTests saw it in a CI run).
    /// </summary>
    public static void StartTracing(IHost host) => host.Services.GetService<TracerProvider>();

    /// <summary>
    /// The engine's services (run store, queue, runtime, stores, runners) for any host: the
    /// generic host of the CLI and the web host of `pipelines server` share this wiring.
    /// <paramref name="worker"/> adds a Hangfire server that runs task and gather jobs,
    /// <paramref name="triggers"/> the trigger role (docs/triggers.md). Functions, triggers and
    /// the algorithm catalog are wired with PostgreSQL in every process; in the embedded mode
    /// only for a <paramref name="server"/>, the one process that outlives a command (what a
    /// CLI command recorded in memory would end with it, unseen). <paramref name="keepWarm"/>
    /// keeps the functions' min_warm containers (docs/functions.md).
    /// </summary>
    public static IServiceCollection AddPipelinesEngine(this IServiceCollection services, IConfiguration config, bool worker, bool triggers = false, bool server = false, bool keepWarm = false) =>
        services.AddPipelinesEngine(EngineSettings.Read(config), worker, triggers, server, keepWarm);

    /// <summary>The engine's services from settings already read (<see cref="EngineSettings.Read"/>).</summary>
    public static IServiceCollection AddPipelinesEngine(this IServiceCollection services, EngineSettings settings, bool worker, bool triggers = false, bool server = false, bool keepWarm = false)
    {
        var workerOptions = settings.Worker;
        services.AddSingleton(settings);
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(workerOptions);
        services.AddSingleton(settings.Hangfire);
        services.AddSingleton(settings.Harvest);
        services.AddSingleton(settings.Prices);
        TelemetryHosting.Add(services, settings.Telemetry, workerOptions.Name);
        if (settings.Telemetry.QueueMetrics)
        {
            AddQueueSampler(services);
        }

        services.AddHostedService<EngineGauges>();
        services.AddContainers(settings.Docker);
        services.AddSingleton(_ => new ObjectStoreFactory(settings.S3));
        services.AddSingleton(settings.Algorithms);
        services.TryAddSingleton(settings.Tenants);

        // Every part's runtime: algorithm:// resolved through the catalog, missing images loaded from the algorithm store (docs/algorithms.md).
        services.AddSingleton<IContainerRuntime>(sp => new AlgorithmRuntime(
            sp.GetRequiredKeyedService<IContainerRuntime>(EngineRuntime),
            sp.GetRequiredService<IContainerImages>(),
            sp.GetService<AlgorithmService>(),
            sp.GetService<IAlgorithmStore>(),
            sp.GetRequiredService<AlgorithmOptions>(),
            sp.GetRequiredService<ObjectStoreFactory>(),
            workerOptions.Name,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<AlgorithmRuntime>>()));

        // Warm containers for steps with reuse: true (and functions): one pool per process, its containers removed when the host stops.
        services.AddSingleton(workerOptions.QuotaWatch());
        services.AddSingleton<IWarmPool, DockerWarmPool>();
        // Tasks wait in the run store until the dispatcher (below, where workers run) releases them to Hangfire (docs/tenants.md).
        services.AddSingleton<HangfireTaskQueue>();
        services.AddSingleton(sp => new DispatchSignal(sp.GetService<NpgsqlDataSource>()));
        services.AddSingleton<ITaskQueue, DispatchingTaskQueue>();
        services.AddSingleton<IWorkerBoard, HangfireWorkerBoard>();
        services.AddSingleton<OutageGate>();
        services.AddSingleton<RunDefinitions>();
        services.AddSingleton<TaskCache>();
        services.AddSingleton<Staging>();
        services.AddSingleton<AttemptWatch>();
        services.AddSingleton<AttemptShell>();
        services.AddSingleton<StepLoop>();
        services.AddSingleton<WarmSteps>();
        services.AddSingleton<ILocalWorkers>(sp => sp.GetRequiredService<WarmSteps>());
        services.AddSingleton<TaskFolders>();
        services.AddSingleton(TaskRunner.Create);
        services.AddSingleton<ITaskHandler>(sp => sp.GetRequiredService<TaskRunner>());
        services.AddSingleton<GatherRunner>();
        services.AddSingleton<IGatherHandler>(sp => sp.GetRequiredService<GatherRunner>());
        services.AddSingleton(settings.LocalRoots);
        services.AddSingleton(sp => new RunSubmitter(
            sp.GetRequiredService<IRunStore>(), sp.GetRequiredService<ITaskQueue>(), sp.GetRequiredService<IContainerRuntime>(), sp.GetRequiredService<ObjectStoreFactory>(),
            sp.GetRequiredService<LocalRoots>(), sp.GetRequiredService<Tenancy.TenantOptions>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<RunSubmitter>>(),
            sp.GetRequiredService<ILocalWorkers>(), sp.GetService<AlgorithmService>()));
        services.AddTransient<TaskJob>();
        services.AddTransient<GatherJob>();
        services.AddSingleton(sp =>
        {
            var budgets = new Quotas.TenantBudgets(sp.GetRequiredService<IUsageStore>(), settings.Prices, sp.GetRequiredService<Tenancy.TenantOptions>(), sp.GetRequiredService<TimeProvider>());
            if (settings.Source is { } source)
            {
                // A raised budget is taken when the configuration's files change (docs/tenants.md, Budgets).
                budgets.Follow(source, settings.LocalRoots.Allows, sp.GetRequiredService<ILogger<Quotas.TenantBudgets>>());
            }

            return budgets;
        });
        services.AddSingleton(sp => new Quotas.TenantQuotas(sp.GetRequiredService<Quotas.ITenantLimits>(), sp.GetRequiredService<Tenancy.TenantOptions>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<Quotas.TenantQuotas>>(), sp.GetRequiredService<Quotas.TenantBudgets>()));

        var postgres = settings.Database.Postgres;
        if (postgres is not null)
        {
            // Named, so that Npgsql's metrics and traces label its pool "pipelines", never with the connection string.
            services.AddSingleton(_ => new NpgsqlDataSourceBuilder(postgres) { Name = "pipelines" }.Build());

            // The project's tables are made here, at host start, by their one owner; first, so
            // that no hosted service registered after (Hangfire servers, triggers, Kestrel) meets a missing table.
            var schema = settings.Database.Schema;
            services.AddSingleton(sp => new PostgresSchema(sp.GetRequiredService<NpgsqlDataSource>(), schema));
            services.AddHostedService<SchemaSetup>();
            services.AddSingleton<IRunStore>(sp => new PostgresRunStore(sp.GetRequiredService<NpgsqlDataSource>(), schema));
            services.AddSingleton<IAlgorithmStore>(sp => new PostgresAlgorithmStore(sp.GetRequiredService<NpgsqlDataSource>(), schema));
            services.AddSingleton<ITriggerStore>(sp => new PostgresTriggerStore(sp.GetRequiredService<NpgsqlDataSource>(), schema));
            services.AddSingleton<IFunctionStore>(sp => new PostgresFunctionStore(sp.GetRequiredService<NpgsqlDataSource>(), schema));
            services.AddSingleton<IUsageStore>(sp => new PostgresUsageStore(sp.GetRequiredService<NpgsqlDataSource>(), schema));
            services.AddSingleton(sp => new Quotas.PostgresTenantLimits(sp.GetRequiredService<NpgsqlDataSource>(), schema));
            services.AddSingleton<Quotas.ITenantLimits>(sp => sp.GetRequiredService<Quotas.PostgresTenantLimits>());
            services.AddHostedService<Quotas.TenantLimitsHeartbeat>();
            services.AddHangfire((sp, c) =>
            {
                HangfireSchema.Install(sp.GetRequiredService<NpgsqlDataSource>(), settings.Hangfire.Schema);
                ConfigurePostgres(Common(c, sp, settings.Hangfire), postgres, settings.Hangfire);
            });
        }
        else
        {
            // One ledger, written by the run store's commits and the function store's finishes.
            // Its records go to a spill file in the temporary folder (unlinked), as the run store's provenance rows.
            services.AddSingleton(_ => new InMemoryUsageStore());
            services.AddSingleton<IUsageStore>(sp => sp.GetRequiredService<InMemoryUsageStore>());
            services.AddSingleton<IRunStore>(sp => new InMemoryRunStore(usage: sp.GetRequiredService<InMemoryUsageStore>()));
            services.AddSingleton<Quotas.ITenantLimits, Quotas.InMemoryTenantLimits>();
            if (server)
            {
                services.AddSingleton<IAlgorithmStore, InMemoryAlgorithmStore>();
                services.AddSingleton<ITriggerStore, InMemoryTriggerStore>();
                services.AddSingleton<IFunctionStore>(sp => new InMemoryFunctionStore(sp.GetRequiredService<InMemoryUsageStore>()));
            }

            // A finished job is dropped a minute after it ends, not after Hangfire.InMemory's
            // default of 3 hours: no reader needs it (a task's record is the run store's), and
            // kept it grew the engine by about 1 KB a task (docs/benchmarks.md, "Growth").
            services.AddHangfire((sp, c) => Common(c, sp, settings.Hangfire).UseInMemoryStorage(new InMemoryStorageOptions { MaxExpirationTime = TimeSpan.FromMinutes(1) }));
        }

        if (postgres is not null || server)
        {
            // The algorithm catalog (docs/algorithms.md); triggers (docs/triggers.md): the ledger,
            // ingest and registration, and for that role the trigger loop and the "triggers"
            // queue's Hangfire server; functions (docs/functions.md): invoker and async job.
            services.AddSingleton<AlgorithmService>();
            TriggerHosting.Add(services, settings.Triggers, role: triggers);
            FunctionHosting.Add(services, settings.Functions, keepWarm);
        }

        if (worker)
        {
            services.AddHangfireServer(o =>
            {
                o.WorkerCount = Math.Max(1, workerOptions.Concurrency);
                o.ServerName = workerOptions.Name;
                o.SchedulePollingInterval = TimeSpan.FromSeconds(1);
                o.ShutdownTimeout = TimeSpan.FromSeconds(30);
                settings.Hangfire.SetServerTimings(o);
            });

            services.AddHostedService<LeftoverCleaner>();
            services.AddHostedService<WarmStepWatch>();
            services.AddSingleton(sp => new WorkerSlots(sp.GetRequiredService<JobStorage>(), sp.GetRequiredService<IWorkerBoard>(), sp.GetRequiredService<TimeProvider>()));
            services.AddSingleton(sp => new TaskDispatcher(
                sp.GetRequiredService<IRunStore>(), sp.GetRequiredService<HangfireTaskQueue>(), sp.GetRequiredService<WorkerSlots>(), sp.GetRequiredService<DispatchSignal>(),
                sp.GetRequiredService<Tenancy.TenantOptions>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<TaskDispatcher>>(), sp.GetService<NpgsqlDataSource>(),
                settings.Database.Schema, sp.GetRequiredService<Quotas.TenantBudgets>(), sp.GetService<InvocationRelease>()));
            services.AddHostedService(sp => sp.GetRequiredService<TaskDispatcher>());
            AddHarvester(services, settings.Harvest, workerOptions);
            if (!string.IsNullOrWhiteSpace(postgres))
            {
                services.AddSingleton(new QueueWatchdogOptions(settings.Hangfire.Schema, settings.Hangfire.ServerTimeout, settings.Hangfire.WatchdogInterval));
                services.AddSingleton<QueueWatchdog>();
                services.AddHostedService(sp => sp.GetRequiredService<QueueWatchdog>());
            }
        }

        return services;
    }

    /// <summary>The key of the engine's own runtime, under the wrappers every part gets (<see cref="AlgorithmRuntime"/>).</summary>
    public const string EngineRuntime = "engine";

    /// <summary>
    /// The containers' seams (Containers/, docs/architecture.md), a line each, over the one
    /// Docker engine of the process (configuration section Docker). A second runtime (Podman,
    /// Kubernetes) is its own engine class beside DockerEngine and these lines pointed at it.
    /// </summary>
    public static IServiceCollection AddContainers(this IServiceCollection services, DockerOptions options)
    {
        services.AddSingleton(options);
        services.AddSingleton<DockerEngine>();
        services.AddKeyedSingleton(EngineRuntime, (sp, _) => sp.GetRequiredService<DockerEngine>().Runtime);
        services.AddSingleton(sp => sp.GetRequiredService<DockerEngine>().Images);
        services.AddSingleton(sp => sp.GetRequiredService<DockerEngine>().Containers);
        services.AddSingleton(sp => sp.GetRequiredService<DockerEngine>().Suspender);
        services.AddSingleton(sp => sp.GetRequiredService<DockerEngine>().Sweep);
        services.AddSingleton(sp => sp.GetRequiredService<DockerEngine>().Liveness);
        services.AddSingleton(sp => sp.GetRequiredService<DockerEngine>().Idle);
        return services;
    }

    /// <summary>
    /// Idle-resource harvesting (docs/harvesting.md): the owner's load sampled, admission,
    /// suspend and vacate. Making the harvester makes our cgroup parent and sets its CPU class.
    /// </summary>
    private static void AddHarvester(IServiceCollection services, HarvestOptions options, WorkerOptions workerOptions)
    {
        var policy = Harvester.Parse(options.Policy, HarvestPolicy.Always);
        services.AddSingleton(sp =>
        {
            var idle = sp.GetRequiredService<IdleCgroup>();
            var time = sp.GetRequiredService<TimeProvider>();
            return new Harvester(
                new HostLoadSampler(idle.Path, time, options.OwnerCgroup, idle.Hierarchy),
                policy,
                options,
                workerOptions.Concurrency,

                // Read again where the class comes from a slice systemd makes with the first container.
                () => sp.GetRequiredService<DockerEngine>().RereadIdleClass().Mode,
                sp.GetRequiredService<IContainerSuspender>(),
                time,
                sp.GetRequiredService<ILogger<Harvester>>())
            {
                // Looked at before each admission, so that no task starts once a drain is asked.
                DrainRequested = () => HarvestBoard.DrainAsked(sp.GetRequiredService<IWorkerBoard>(), workerOptions.Name),
            };
        });
        services.AddHostedService(sp => sp.GetRequiredService<Harvester>());
        services.AddHostedService(sp => ActivatorUtilities.CreateInstance<HarvestBoard>(sp, workerOptions.Name));
    }

    /// <summary>Makes this host report the queue (Queue/QueueSampler); the server does unless Telemetry:QueueMetrics is false.</summary>
    public static void AddQueueSampler(IServiceCollection services)
    {
        if (services.Any(s => s.ServiceType == typeof(QueueSampler)))
        {
            return;
        }

        services.AddSingleton<QueueSampler>();
        services.AddHostedService(sp => sp.GetRequiredService<QueueSampler>());
    }

    /// <summary>
    /// How long an outage is waited out: a task or gather job that throws one is delivered again
    /// after each delay (Hangfire:Retries, Hangfire:RetryDelays in seconds; the last delay
    /// repeats), about 48 minutes in all by default, before EndWhenJobFails ends it.
    /// </summary>
    internal static AutomaticRetryAttribute RetryPolicy(HangfireOptions options)
    {
        var attempts = options.Retries;
        var delays = options.RetryDelays;
        return new AutomaticRetryAttribute
        {
            Attempts = attempts,
            DelaysInSeconds = Enumerable.Range(0, Math.Max(1, attempts)).Select(i => delays[Math.Min(i, delays.Count - 1)]).ToArray(),
        };
    }

    private static IGlobalConfiguration Common(IGlobalConfiguration c, IServiceProvider services, HangfireOptions options)
    {
        // Hangfire's filters are global: replace ours (and its default retry) rather than add a
        // second copy when a process builds more than one host.
        foreach (var old in GlobalJobFilters.Filters.Where(f => f.Instance is AutomaticRetryAttribute or EndWhenJobFails).ToList())
        {
            GlobalJobFilters.Filters.Remove(old.Instance);
        }

        return c
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseTypeResolver(MovedJobTypes.Resolve)
            .UseRecommendedSerializerSettings()
            .UseLogProvider(new HangfireLogs(services.GetRequiredService<ILoggerFactory>()))
            .UseFilter(RetryPolicy(options))
            .UseFilter(new EndWhenJobFails(services));
    }

    private static void ConfigurePostgres(IGlobalConfiguration c, string postgres, HangfireOptions options) => c.UsePostgreSqlStorage(
        o => o.UseNpgsqlConnection(postgres),
        new PostgreSqlStorageOptions
        {
            SchemaName = options.Schema,

            // Installed once by HangfireSchema.Install, under a lock.
            PrepareSchemaIfNecessary = false,

            // A worker that dies leaves its job invisible until this timeout (the QueueWatchdog
            // hands it back within a minute); sliding keeps a live worker's long job from being
            // delivered twice (facts.md).
            InvisibilityTimeout = options.InvisibilityTimeout,
            UseSlidingInvisibilityTimeout = true,
            QueuePollInterval = TimeSpan.FromSeconds(1),

            // Off: in 1.21.1 a fetched job is kept alive before an unbounded wait on the
            // LISTEN task, which Npgsql 10.0.3 can miss the cancel of (npgsql#5975), so the
            // job stayed fetched and never ran until the next NOTIFY. A 1 s poll picks up as fast.
            EnableLongPolling = false,
        });
}
