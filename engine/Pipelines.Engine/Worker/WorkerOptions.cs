using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Model;
using Pipelines.Settings;
using Pipelines.Tenancy;

namespace Pipelines.Worker;

/// <summary>How this process runs tasks (configuration section Worker, read by <see cref="SettingsBinder"/>).</summary>
public sealed record WorkerOptions
{
    /// <summary>Tasks run at once by this process (Hangfire workers). Containers level off at about 4 on 2 cores. 0: none (a `pipelines run --local-workers 0` that leaves its tasks to remote workers).</summary>
    [AtLeastZero]
    public int Concurrency { get; init; } = 4;

    /// <summary>Local folder for staged inputs and outputs; the Docker engine must see the same path.</summary>
    [DefaultText("$TMPDIR/pipelines-scratch")]
    public string Scratch { get; init; } = Path.Combine(Path.GetTempPath(), "pipelines-scratch");

    /// <summary>Transfers at once within one task.</summary>
    [Positive]
    public int TransferConcurrency { get; init; } = 16;

    /// <summary>How often a running step looks whether its run was cancelled.</summary>
    [Positive]
    public TimeSpan CancelPollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>At most this many bytes may a step leave in /out (a step's resources.disk may ask for less).</summary>
    [Bytes]
    [Positive]
    public long MaxOutputBytes { get; init; } = 10L * 1024 * 1024 * 1024;

    /// <summary>At most this many files and folders may a step leave in /out (a step's resources.files may ask for less).</summary>
    [Positive]
    public long MaxOutputFiles { get; init; } = 100_000;

    /// <summary>How often a running step's /out is measured against its quotas and the scratch disk's free space.</summary>
    [Positive]
    public TimeSpan QuotaPollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A running step is stopped when the scratch file system has less than this free (or less
    /// than a tenth of its size, whichever is smaller), so one step cannot fill the worker's disk.
    /// </summary>
    [Bytes]
    public long MinScratchFree { get; init; } = 256L * 1024 * 1024;

    /// <summary>
    /// How long one job waits an outage out in-process (with backoff, the worker taking no new
    /// work meanwhile) before it gives up to Hangfire's retries (Hangfire:Retries); 0 gives up at once.
    /// </summary>
    [AtLeastZero]
    public TimeSpan OutageWait { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>
    /// How long a vacated attempt's record (its rows under tasks/TASK/vacated/, and the task
    /// handed back) may still take once the job is cancelled (the worker shuts down, or Hangfire
    /// restarts its server) before it is given up: well inside Hangfire's ShutdownTimeout (30 s),
    /// so a shutdown never hangs on an object store that does not answer (docs/harvesting.md).
    /// </summary>
    [Positive]
    public TimeSpan VacateRecordGrace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a job of several tasks (Tenancy:TasksPerJob) may go on starting its next task:
    /// past it, the tasks it has not started go back to the dispatcher, to be released again in
    /// their tenant's turn. A job of short tasks walks them all; one of long tasks runs one, so
    /// another tenant's work never waits behind a queue of tasks held in one job.
    /// </summary>
    [Positive]
    public TimeSpan JobTime { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Values of the secrets steps may ask for by name (configuration section Secrets, e.g.
    /// PIPELINES_Secrets__API_TOKEN), read once at start; never recorded, logged or printed.
    /// </summary>
    public IReadOnlyDictionary<string, string> Secrets { get; init; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// How long a claim holds a running task against a second delivery; a dead worker's task
    /// can be claimed again after this (docs/architecture.md, Delivery semantics).
    /// </summary>
    [Positive]
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(45);

    /// <summary>How often a running task's lease is renewed; a lease survives two missed renewals.</summary>
    [Positive]
    public TimeSpan LeaseRefreshInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How long a warm container of a run's reuse: true step is kept with no request for it
    /// (docs/functions.md): long enough to bridge the gaps between one run's tasks, short enough
    /// that a finished run leaves none behind for long.
    /// </summary>
    [Positive]
    public TimeSpan WarmStepIdle { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The port of a `pipelines worker`'s listener for /healthz, /readyz and /metrics: a number,
    /// 0 for any free port, or off (OpenTelemetry's Prometheus exporter port by default).
    /// </summary>
    [Matches(@"^([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]|off|false)$", "a port number (0 for any free one) or off")]
    public string HealthPort { get; init; } = "9464";

    /// <summary>The address that listener listens on.</summary>
    [Matches(@"^[0-9a-fA-F:.]+$", "an IP address (127.0.0.1, or 0.0.0.0 for every interface)")]
    public string HealthAddress { get; init; } = "127.0.0.1";

    /// <summary>The name recorded in provenance.</summary>
    [DefaultText("HOST:PID")]
    public string Name { get; init; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>The quotas of one step's or function's /out under this worker's caps (<see cref="OutputLimits.For"/>, the rule's one home).</summary>
    public OutputLimits LimitsFor(Resources resources, string kind, string name) => OutputLimits.For(resources, MaxOutputBytes, MaxOutputFiles, kind, name);

    /// <summary>How the warm pool holds its idle containers to their quotas: as a running attempt, every QuotaPollInterval, keeping MinScratchFree.</summary>
    public QuotaWatch QuotaWatch() => new(QuotaPollInterval, MinScratchFree);

    /// <summary>
    /// Values of the secrets of each tenant other than default (configuration Tenants:&lt;id&gt;:Secrets,
    /// e.g. PIPELINES_Tenants__lab-a__Secrets__API_TOKEN), read once at start. The default tenant's are
    /// <see cref="Secrets"/> (with Tenants:default:Secrets, if listed, taking precedence).
    /// </summary>
    public IReadOnlyDictionary<TenantId, IReadOnlyDictionary<string, string>> TenantSecrets { get; init; } = new Dictionary<TenantId, IReadOnlyDictionary<string, string>>();

    /// <summary>
    /// The secrets one step (or function) of <paramref name="tenant"/> asks for, by the names it gives;
    /// a name this worker lacks for that tenant fails the step. Another tenant's secret of that name is
    /// not there for it, and the refusal is the same words as for a secret no one has (docs/tenants.md).
    /// </summary>
    public IReadOnlyDictionary<string, string> SecretsFor(TenantId tenant, string step, IReadOnlyList<string> names)
    {
        var own = TenantSecrets.GetValueOrDefault(tenant);
        var shared = tenant.IsDefault ? Secrets : null;
        var setting = tenant.IsDefault ? "Secrets:" : $"Tenants:{tenant}:Secrets:";
        return names.ToDictionary(
            n => n,
            n => own is not null && own.TryGetValue(n, out var v) ? v
                : shared is not null && shared.TryGetValue(n, out v) ? v
                : throw new PipelinesException($"this worker has no secret {n}: set {setting}{n} in its configuration, or PIPELINES_{setting.Replace(":", "__", StringComparison.Ordinal)}{n} (step '{step}' asks for it)", retryHelps: false),
            StringComparer.Ordinal);
    }
}
