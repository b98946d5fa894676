using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Harvest;
using Pipelines.Model;
using Pipelines.Queue;
using Pipelines.Runs;
using Pipelines.Tenancy;

namespace Pipelines.Worker;

/// <summary>
/// The warm containers of runs' steps with <c>reuse: true</c> on this worker: their spec (one
/// home, so that the tasks' requests and a start ahead of them name the same containers), their
/// start ahead of a run's first tasks (for the submitter, as its <see cref="ILocalWorkers"/>), and
/// their stop when the run has no task left.
/// </summary>
internal sealed partial class WarmSteps(IContainerRuntime runtime, ITaskQueue queue, WorkerOptions options, ILogger<WarmSteps> log, IWarmPool? pool = null, Harvester? harvester = null) : ILocalWorkers
{
    /// <summary>
    /// The warm containers of one step of one run: fork mode, up to one per worker slot, idled
    /// out after Worker:WarmStepIdle.
    /// </summary>
    internal static WarmSpec SpecOf(string runId, string step, string imageDigest, Resources resources, IReadOnlyDictionary<string, string> secrets, WorkerOptions options) => new(
        OwnerPrefix(runId) + $"step:{step}",
        imageDigest,
        WarmMode.Fork,
        [],
        new Dictionary<string, string>(),
        resources,
        new Dictionary<string, string> { ["org.pipelines.run"] = runId, ["org.pipelines.step"] = step })
    {
        Secrets = secrets,
        Max = Math.Max(1, options.Concurrency),
        MaxQueue = int.MaxValue,
        IdleTimeout = options.WarmStepIdle,
        Limits = options.LimitsFor(resources, "step", step),
    };

    /// <summary>The start of the warm-pool owner of every step of a run: <c>run:ID/</c>.</summary>
    private static string OwnerPrefix(string runId) => $"run:{runId}/";

    /// <inheritdoc/>
    public int Slots => options.Concurrency;

    /// <summary>
    /// A run is being submitted: when this process's worker is the only live one (a <c>pipelines
    /// run</c> in the embedded mode, or the one worker of a small installation) and lends its CPU
    /// whatever the machine does (Harvest:Policy always: under when-idle a container starts only
    /// when admitted), the warm containers of the run's first step (reuse: true), one per worker
    /// slot, start while the input is listed, hashed and planned, rather than after the first
    /// task is delivered. Never fails the submission: a container that cannot start is logged, and
    /// the tasks meet the cause themselves.
    /// </summary>
    public async Task StartAheadAsync(string runId, TenantId tenant, Workflow workflow, IReadOnlyDictionary<string, string> digests, CancellationToken ct)
    {
        if (pool is not { CanFork: true } || harvester is not { Policy: HarvestPolicy.Always } || workflow.Steps is not [{ Reuse: true } first, ..])
        {
            return;
        }

        try
        {
            if (await queue.WorkerSlotsAsync(ct).ConfigureAwait(false) != options.Concurrency)
            {
                // Other workers are live: the tasks may run on any of them.
                return;
            }

            var digest = digests[first.Image];
            await runtime.EnsureImageAsync(digest, ct, pullFrom: first.Image).ConfigureAwait(false);
            pool.Prewarm(SpecOf(runId, first.Name, digest, first.Resources, options.SecretsFor(tenant, first.Name, first.Secrets), options), options.Concurrency);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogStartAheadFailed(log, runId, first.Name, PipelinesException.Describe(e));
        }
    }

    /// <summary>Stops the warm containers of every step of a run (a run with no task left, or one that was not submitted).</summary>
    public Task RetireAsync(string runId, string reason) =>
        pool is null ? Task.CompletedTask : Retire(pool, runId, reason);

    /// <summary>Stops the warm containers of every step of a run in <paramref name="pool"/>.</summary>
    internal static Task Retire(IWarmPool pool, string runId, string reason) =>
        pool.RetireWhereAsync(o => o.StartsWith(OwnerPrefix(runId), StringComparison.Ordinal), reason);

    /// <summary>The runs whose steps have warm containers in <paramref name="pool"/>, each once.</summary>
    internal static IReadOnlyList<string> RunsIn(IWarmPool pool) =>
        [.. pool.Stats().Select(s => s.Owner)
            .Where(o => o.StartsWith("run:", StringComparison.Ordinal) && o.IndexOf('/', StringComparison.Ordinal) > 4)
            .Select(o => o[4..o.IndexOf('/', StringComparison.Ordinal)])
            .Distinct(StringComparer.Ordinal)];

    /// <summary>
    /// A run has no task left: its warm containers on this worker are stopped, in the background
    /// (the pool's disposal waits for the stops), so that the gather need not wait.
    /// </summary>
    internal void RunEnded(string runId) => _ = RetireAsync(runId, $"run {runId} has no task left");

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId}: the warm containers of step {Step} were not started ahead of its tasks: {Reason}")]
    private static partial void LogStartAheadFailed(ILogger logger, string runId, string step, string reason);
}
