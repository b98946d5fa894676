using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Worker;

/// <summary>
/// How a step runs watched: while its container runs, the run is looked at for a user's cancel
/// and the step's /out is measured against its quotas and the scratch disk's free space; when
/// either says stop, the container is stopped (the runtime kills and removes it) and the reason
/// is returned instead of a result.
/// </summary>
internal sealed partial class StepWatch(IRunStore store, WorkerOptions options, TimeProvider time, ILogger<StepWatch> log, Harvest.Harvester? harvester = null)
{
    /// <summary>How a watched step ended: its result, or why it was stopped (a cancel, or a quota or the disk).</summary>
    public sealed record Watched(ContainerResult? Result, string? CancelledBecause, string? StoppedBecause)
    {
        /// <summary>The harvester vacated the step (the owner needed the machine): the task goes back to the queue.</summary>
        public bool Vacated { get; init; }
    }

    /// <summary>
    /// Runs <paramref name="run"/> (the container, given a token that stops it) while watching
    /// <paramref name="runId"/> for a cancel and <paramref name="outDir"/> for its quotas.
    /// </summary>
    public async Task<Watched> RunAsync(string runId, string outDir, OutputLimits limits, Func<CancellationToken, Task<ContainerResult>> run, CancellationToken ct, long memory = 0)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(ct);

        // The harvester may vacate the step (docs/harvesting.md): that stops the container as a cancel does.
        using var vacate = new CancellationTokenSource();
        using var vacating = vacate.Token.Register(cancel.Cancel);
        using var registered = harvester?.Running(vacate, () => memory);
        var watcher = WatchForCancelAsync(runId, cancel, watching.Token);
        var quota = WatchQuotaAsync(outDir, limits, cancel, watching.Token);
        try
        {
            var result = await run(cancel.Token).ConfigureAwait(false);
            return new Watched(result, null, null);
        }
        // A vacate is a vacate even when the job's own cancellation (a shutdown) comes while the
        // container is being stopped: the attempt is recorded vacated, whatever else cancels.
        catch (OperationCanceledException) when (cancel.IsCancellationRequested && (vacate.IsCancellationRequested || !ct.IsCancellationRequested))
        {
            await watching.CancelAsync().ConfigureAwait(false);
            if (vacate.IsCancellationRequested)
            {
                return new Watched(null, null, null) { Vacated = true };
            }

            var over = await quota.ConfigureAwait(false);
            return over is not null ? new Watched(null, null, over) : new Watched(null, await watcher.ConfigureAwait(false) ?? "run stopped", null);
        }
        finally
        {
            await watching.CancelAsync().ConfigureAwait(false);
            await watcher.ConfigureAwait(false);
            await quota.ConfigureAwait(false);
        }
    }

    private async Task<string?> WatchQuotaAsync(string outDir, OutputLimits limits, CancellationTokenSource cancel, CancellationToken watching)
    {
        try
        {
            while (true)
            {
                await Task.Delay(options.QuotaPollInterval, time, watching).ConfigureAwait(false);
                var (files, bytes) = OutputFolder.Measure(outDir, limits);
                var (free, total) = NoFollow.Space(outDir);
                var reserve = Math.Min(options.MinScratchFree, total / 10);
                var over = files > limits.MaxFiles ? $"it wrote more than {limits.MaxFiles} files and folders to /out, over its quota ({limits.FilesSource})"
                    : bytes > limits.MaxBytes ? $"it wrote more than {Quantities.FormatSize(limits.MaxBytes)} to /out, over its quota ({limits.BytesSource})"
                    : free < reserve ? $"the worker's scratch disk ({options.Scratch}) has only {Quantities.FormatSize(free)} free, less than the {Quantities.FormatSize(reserve)} kept in reserve (Worker:MinScratchFree)"
                    : null;
                if (over is not null)
                {
                    LogQuotaStop(log, outDir, over);
                    await cancel.CancelAsync().ConfigureAwait(false);
                    return over;
                }
            }
        }
        catch (OperationCanceledException) when (watching.IsCancellationRequested)
        {
            return null;
        }
    }

    private async Task<string?> WatchForCancelAsync(string runId, CancellationTokenSource cancel, CancellationToken watching)
    {
        try
        {
            while (true)
            {
                await Task.Delay(options.CancelPollInterval, time, watching).ConfigureAwait(false);
                try
                {
                    var reason = (await store.GetRunAsync(runId, watching).ConfigureAwait(false))?.StopReason;
                    if (StopReasons.IsCancel(reason))
                    {
                        LogStoppingStep(log, runId, reason!);
                        await cancel.CancelAsync().ConfigureAwait(false);
                        return reason;
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The run store is out of reach for a moment: the step goes on, and the next look may see it.
                    LogWatchFailed(log, runId, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (watching.IsCancellationRequested)
        {
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId}: stopping a running step: {Reason}")]
    private static partial void LogStoppingStep(ILogger logger, string runId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId}: could not look for a cancel: {Error}")]
    private static partial void LogWatchFailed(ILogger logger, string runId, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "stopping the step writing to {OutDir}: {Reason}")]
    private static partial void LogQuotaStop(ILogger logger, string outDir, string reason);
}
