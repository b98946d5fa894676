using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Containers.Warm;
using Pipelines.RunStore;

namespace Pipelines.Worker;

/// <summary>
/// Stops this worker's warm containers of runs that have no task left. The worker that settles
/// a run's last task stops them at once (<see cref="WarmSteps.RunEnded"/>), but a run's last
/// tasks can end elsewhere: the dispatcher ends a cancelled run's pending tasks itself, and
/// another worker may settle the last one. Those containers would otherwise idle until
/// Worker:WarmStepIdle. So, every Worker:CancelPollInterval while the pool holds containers of
/// runs, each such run is looked up, and one that is gathering or has ended has its containers
/// stopped. A run not (yet) in the store is left alone: its containers may have been started
/// ahead of its tasks while it is planned.
/// </summary>
internal sealed partial class WarmStepWatch(IRunStore store, WorkerOptions options, TimeProvider time, ILogger<WarmStepWatch> log, IWarmPool? pool = null) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (pool is null)
        {
            return;
        }

        while (true)
        {
            await Task.Delay(options.CancelPollInterval, time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (stoppingToken.IsCancellationRequested)
            {
                return;
            }

            try
            {
                await LookAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // A look that fails is tried again at the next; the watch never ends the worker
                // (a BackgroundService's exception stops the host).
                LogLookFailed(log, "(every run)", e.Message);
            }
        }
    }

    /// <summary>One look; returns the runs whose containers it stopped.</summary>
    internal async Task<IReadOnlyList<string>> LookAsync(CancellationToken cancellationToken)
    {
        var stopped = new List<string>();
        if (pool is null)
        {
            return stopped;
        }

        foreach (var runId in WarmSteps.RunsIn(pool))
        {
            RunRecord? run;
            try
            {
                run = await store.GetRunAsync(runId, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // The run store is out of reach for a moment: the next look asks again.
                LogLookFailed(log, runId, e.Message);
                continue;
            }

            if (run is { State: RunState.Gathering } || run?.State.IsTerminal() == true)
            {
                await WarmSteps.Retire(pool, runId, $"run {runId} has no task left ({run.State.Name()})").ConfigureAwait(false);
                stopped.Add(runId);
            }
        }

        return stopped;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId}: could not look whether its warm containers are still needed: {Error}")]
    private static partial void LogLookFailed(ILogger logger, string runId, string error);
}
