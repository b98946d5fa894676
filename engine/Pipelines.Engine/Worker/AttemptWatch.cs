using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Model;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Worker;

/// <summary>
/// How an attempt runs watched (a step's container, or a request to a warm container, a step's
/// or a function's): while it runs, its run is looked at for a user's cancel, and the host
/// folders it can write are measured against its quotas and their disk's free space; when
/// either says stop, or the harvester vacates it, the attempt's token is cancelled (the runtime
/// kills and removes a container of its own; a warm request's processes are killed) and the
/// reason is returned instead of a result. Part of the <see cref="AttemptShell"/>.
/// </summary>
internal sealed partial class AttemptWatch(IRunStore store, WorkerOptions options, TimeProvider time, ILogger<AttemptWatch> log)
{
    /// <summary>
    /// What is watched: the run looked at for a cancel (null: only the caller's token cancels),
    /// and the folders the attempt can write with their limits (the rule lives with them, in Containers).
    /// </summary>
    public sealed record Plan(string? RunId, FolderQuota Quota);

    /// <summary>
    /// Runs <paramref name="run"/> (given a token that stops it) while watching <paramref name="plan"/>;
    /// <paramref name="vacate"/> is the harvester's. Returns its result, or why it was stopped.
    /// The caller's own cancellation is thrown, unless a vacate came first.
    /// </summary>
    public async Task<(T? Result, AttemptStop? Stop)> RunAsync<T>(Plan plan, CancellationTokenSource vacate, Func<CancellationToken, Task<T>> run, CancellationToken ct)
        where T : class
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct, vacate.Token);
        using var watching = new LoopStop();
        // The job's own cancellation (a shutdown) stops the watches too.
        using var onCancel = ct.UnsafeRegister(static s => _ = ((LoopStop)s!).StopAsync(), watching);
        var watcher = plan.RunId is null ? Task.FromResult<string?>(null) : WatchForCancelAsync(plan.RunId, cancel, watching);
        var quota = plan.Quota.Folders.Count == 0 ? Task.FromResult<string?>(null) : WatchQuotaAsync(plan, cancel, watching.Token);
        try
        {
            return (await run(cancel.Token).ConfigureAwait(false), null);
        }
        // A vacate is a vacate even when the job's own cancellation (a shutdown) comes while the
        // container is being stopped: the attempt is recorded vacated, whatever else cancels.
        catch (OperationCanceledException e) when (cancel.IsCancellationRequested && (vacate.IsCancellationRequested || !ct.IsCancellationRequested))
        {
            await watching.StopAsync().ConfigureAwait(false);
            var printed = (e as ContainerStoppedException)?.Log;
            if (vacate.IsCancellationRequested)
            {
                return (null, AttemptStop.Vacated with { StoppedLog = printed });
            }

            var over = await quota.ConfigureAwait(false);
            return over is not null
                ? (null, new AttemptStop(AttemptStopKind.OverQuota, over) { StoppedLog = printed })
                : (null, new AttemptStop(AttemptStopKind.Cancelled, await watcher.ConfigureAwait(false) ?? "run stopped") { StoppedLog = printed });
        }
        finally
        {
            await watching.StopAsync().ConfigureAwait(false);
            await watcher.ConfigureAwait(false);
            await quota.ConfigureAwait(false);
        }
    }

    private async Task<string?> WatchQuotaAsync(Plan plan, CancellationTokenSource cancel, CancellationToken watching)
    {
        try
        {
            var wait = options.QuotaPollInterval;
            var (before, at) = (0L, time.GetTimestamp());
            while (true)
            {
                // The attempt's end stops the watch: the wait ends without throwing (an exception
                // per request was about 2% of a busy server's CPU, docs/benchmarks.md), and on the
                // thread that ends the attempt (StopWait), with no hop to the thread pool.
                await StopWait.DelayAsync(wait, time, watching).ConfigureAwait(false);
                if (watching.IsCancellationRequested)
                {
                    return null;
                }

                var (over, bytes) = plan.Quota.Over(options.MinScratchFree);
                if (over is not null)
                {
                    LogQuotaStop(log, plan.Quota.Folders[0].Host, over);
                    await cancel.CancelAsync().ConfigureAwait(false);
                    return over;
                }

                // Sooner while a writer nears its quota (Containers/QuotaPace).
                wait = QuotaPace.Next(options.QuotaPollInterval, plan.Quota.Limits.MaxBytes, before, bytes, time.GetElapsedTime(at));
                (before, at) = (bytes, time.GetTimestamp());
            }
        }
        catch (OperationCanceledException) when (watching.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>
    /// Looks at the run for a cancel every Worker:CancelPollInterval. The attempt's end stops the
    /// watch (<see cref="LoopStop"/>): on the thread that ends the attempt while the watch waits, as
    /// the quota watch's, with no hop to the thread pool (a second thread woken per task); on the
    /// thread pool while it is in its query, whose cancellation may go to the database.
    /// </summary>
    private async Task<string?> WatchForCancelAsync(string runId, CancellationTokenSource cancel, LoopStop loop)
    {
        var watching = loop.Token;
        try
        {
            while (true)
            {
                // The attempt's end stops the watch: the wait ends without throwing (an exception
                // per task was about 1% of the engine's CPU at 2,000 one-file tasks, docs/benchmarks.md).
                await StopWait.DelayAsync(options.CancelPollInterval, time, watching).ConfigureAwait(false);
                if (watching.IsCancellationRequested || !loop.TryCall())
                {
                    return null;
                }

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
                finally
                {
                    loop.EndCall();
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "stopping the attempt writing to {OutDir}: {Reason}")]
    private static partial void LogQuotaStop(ILogger logger, string outDir, string reason);
}
