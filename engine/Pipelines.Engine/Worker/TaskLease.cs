using Microsoft.Extensions.Logging;
using Pipelines.RunStore;

namespace Pipelines.Worker;

/// <summary>
/// A running task's claim, held for <see cref="WorkerOptions.LeaseDuration"/> and renewed every
/// <see cref="WorkerOptions.LeaseRefreshInterval"/> while the attempt runs, then released. A
/// second delivery of the task (Hangfire delivers at least once) cannot claim it while the
/// lease is live, so a live task never runs twice; a dead worker's lease simply expires.
/// </summary>
internal sealed partial class TaskLease : IAsyncDisposable
{
    private readonly IRunStore _store;
    private readonly string _runId;
    private readonly int _index;
    private readonly WorkerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly DateTimeOffset _claimedAt;
    private readonly LoopStop _stop = new();
    private readonly Task _renewing;

    private TaskLease(IRunStore store, string runId, int index, WorkerOptions options, TimeProvider time, ILogger log, DateTimeOffset claimedAt, int delivery)
    {
        (_store, _runId, _index, _options, _time, _log, _claimedAt, Delivery) = (store, runId, index, options, time, log, claimedAt, delivery);
        _renewing = RenewAsync(_stop);
    }

    /// <summary>This delivery of the task, from 1 (the claim counts the ones before): its usage record's key.</summary>
    public int Delivery { get; }

    /// <summary>When this delivery claimed the task: its usage record's start, and how the claim knows it was recorded.</summary>
    public DateTimeOffset ClaimedAt => _claimedAt;

    /// <summary>
    /// Claims the task for this worker. While another attempt's lease is live (and the run goes
    /// on) it waits for that attempt to end or its lease to expire; null when the task has ended
    /// or the run stops, so there is nothing to run.
    /// </summary>
    public static async Task<TaskLease?> ClaimAsync(IRunStore store, string runId, int index, WorkerOptions options, TimeProvider time, ILogger log, CancellationToken ct)
    {
        var waited = false;
        while (true)
        {
            var now = time.GetUtcNow();
            if (await store.ClaimTaskAsync(runId, index, options.Name, now, now + options.LeaseDuration, ct).ConfigureAwait(false) is { } before)
            {
                return new TaskLease(store, runId, index, options, time, log, now, before + 1);
            }

            var task = await store.GetTaskAsync(runId, index, ct).ConfigureAwait(false);
            var run = await store.GetRunAsync(runId, ct).ConfigureAwait(false);
            if (task is not { State: TaskState.Running, LeaseUntil: { } until } || run is not { State: RunState.Running, StopReason: null })
            {
                return null;
            }

            if (!waited)
            {
                LogWaiting(log, runId, index, task.Worker ?? "?", until);
                waited = true;
            }

            // Look again when the lease would expire, or sooner: the attempt may end first.
            var wait = until - time.GetUtcNow();
            await Task.Delay(wait < TimeSpan.FromMilliseconds(200) ? TimeSpan.FromMilliseconds(200) : wait > options.LeaseRefreshInterval ? options.LeaseRefreshInterval : wait, time, ct).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        // The renewal is almost always in its wait: it ends on this thread (LoopStop), with no
        // hop to the thread pool and back at every task's end.
        await _stop.StopAsync().ConfigureAwait(false);
        await _renewing.ConfigureAwait(false);
        _stop.Dispose();
        try
        {
            // Released, so that a delivery after an outage or a shutdown does not wait for it to
            // expire; after a commit it is a no-op (the task has ended).
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _store.RenewLeaseAsync(_runId, _index, _options.Name, _claimedAt, _time.GetUtcNow(), limit.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The lease then expires by itself.
            LogRenewFailed(_log, _runId, _index, e.Message);
        }
    }

    private async Task RenewAsync(LoopStop loop)
    {
        var stop = loop.Token;
        try
        {
            while (true)
            {
                // The attempt's end stops the renewal: the wait ends without throwing (an exception
                // per task, docs/benchmarks.md "The managed CPU of a one-file task").
                await Task.Delay(_options.LeaseRefreshInterval, _time, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (stop.IsCancellationRequested || !loop.TryCall())
                {
                    return;
                }

                try
                {
                    if (!await _store.RenewLeaseAsync(_runId, _index, _options.Name, _claimedAt, _time.GetUtcNow() + _options.LeaseDuration, stop).ConfigureAwait(false))
                    {
                        // Ended, or claimed by another attempt after this one's lease expired (a
                        // pause longer than the lease): the commit decides which attempt counts.
                        LogLeaseLost(_log, _runId, _index);
                        return;
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The run store is out of reach for a moment; the lease has room for missed renewals.
                    LogRenewFailed(_log, _runId, _index, e.Message);
                }
                finally
                {
                    loop.EndCall();
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The attempt ended.
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {Index} is running on {Worker} under a lease until {Until:O}: waiting for it to end or expire")]
    private static partial void LogWaiting(ILogger logger, string runId, int index, string worker, DateTimeOffset until);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {Index}: the lease is no longer this attempt's")]
    private static partial void LogLeaseLost(ILogger logger, string runId, int index);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {Index}: could not renew the lease: {Error}")]
    private static partial void LogRenewFailed(ILogger logger, string runId, int index, string error);
}
