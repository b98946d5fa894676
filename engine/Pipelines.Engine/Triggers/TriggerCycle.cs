using Microsoft.Extensions.Logging;
using Pipelines.Model;
using Pipelines.Runs;
using Pipelines.Storage;
using Pipelines.Tenancy;

namespace Pipelines.Triggers;

/// <summary>What one cycle of one trigger did.</summary>
internal sealed record CycleResult(bool Ran, PollOutcome? Poll, IReadOnlyList<string> RunsStarted, IReadOnlyList<string> BatchesFailed);

/// <summary>
/// One cycle of one trigger, under its lock (ITriggerStore.TryLockAsync): finish starting batches that a
/// stopped process left claimed, list the watched prefix into the ledger, then cut runs from the
/// pending versions once they have settled. Every step is safe to repeat after a crash at any
/// line: the ledger and the batch rows, not this process, remember what was done.
/// </summary>
internal sealed partial class TriggerCycle(
    ITriggerStore ledger,
    ObjectStoreFactory stores,
    ITriggerRunStarter starter,
    TriggerOptions options,
    TimeProvider time,
    ILogger<TriggerCycle> log)
{
    private const int RecordChunk = 1000;

    /// <summary>The ledger as the trigger's tenant keeps it: the store names a workflow within a tenant (docs/tenants.md).</summary>
    private ITriggerStore LedgerOf(RegisteredTrigger trigger) => ledger.For(TenantScope.Of(trigger.Tenant));

    /// <summary>Runs a cycle if no other process is running one for this trigger; <paramref name="reconcile"/> lists in full.</summary>
    public async Task<CycleResult> RunAsync(RegisteredTrigger trigger, bool reconcile, CancellationToken cancellationToken)
    {
        await using var held = await LedgerOf(trigger).TryLockAsync(trigger.Name, cancellationToken).ConfigureAwait(false);
        if (held is null)
        {
            return new CycleResult(false, null, [], []);
        }

        return await RunLockedAsync(trigger, reconcile, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Like <see cref="RunAsync"/>, but waits up to <paramref name="wait"/> for the lock (the reconciliation job).</summary>
    public async Task<CycleResult> RunWaitingAsync(RegisteredTrigger trigger, bool reconcile, TimeSpan wait, CancellationToken cancellationToken)
    {
        var until = time.GetUtcNow() + wait;
        while (true)
        {
            await using (var held = await LedgerOf(trigger).TryLockAsync(trigger.Name, cancellationToken).ConfigureAwait(false))
            {
                if (held is not null)
                {
                    return await RunLockedAsync(trigger, reconcile, cancellationToken).ConfigureAwait(false);
                }
            }

            if (time.GetUtcNow() >= until)
            {
                return new CycleResult(false, null, [], []);
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250), time, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<CycleResult> RunLockedAsync(RegisteredTrigger trigger, bool reconcile, CancellationToken ct)
    {
        if (!await LedgerOf(trigger).IsBaselineDoneAsync(trigger.Name, ct).ConfigureAwait(false))
        {
            // `pipelines register` stopped before it had recorded what was already there; polling
            // now would take every existing object for new work. Registering again finishes it.
            await LedgerOf(trigger).SaveErrorAsync(trigger.Name, "registration did not finish (no baseline listing): run `pipelines register` again", time.GetUtcNow(), ct).ConfigureAwait(false);
            return new CycleResult(false, null, [], []);
        }

        var started = new List<string>();
        var failed = new List<string>();

        // 1. Batches claimed by a process that stopped before their run was queued.
        foreach (var batch in await LedgerOf(trigger).OpenBatchesAsync(trigger.Name, ct).ConfigureAwait(false))
        {
            LogResuming(log, trigger.Name, batch.RunId, batch.Objects.Count);
            await StartAsync(trigger, batch, started, failed, ct).ConfigureAwait(false);
        }

        // 2. The watcher: new versions go into the ledger as pending.
        var poll = await PollAsync(trigger, reconcile, ct).ConfigureAwait(false);

        // 3. Settle, then cut: one run per settled group, at most MaxObjectsPerRun objects each.
        while (true)
        {
            var now = time.GetUtcNow();
            var pending = await LedgerOf(trigger).PendingAsync(trigger.Name, ct).ConfigureAwait(false);
            if (!SettleRule.Decide(pending, now, trigger.Settle, options.MaxObjectsPerRun).Cut)
            {
                break;
            }

            var batch = await LedgerOf(trigger).ClaimAsync(trigger.Name, RunSubmitter.NewRunId(now), options.MaxObjectsPerRun, now, ct).ConfigureAwait(false);
            if (batch is null)
            {
                break;
            }

            // The batch row is committed before the run exists: from this line on, a crash leaves
            // a 'claimed' batch that step 1 of the next cycle starts under the same run id.
            await StartAsync(trigger, batch, started, failed, ct).ConfigureAwait(false);
        }

        await LedgerOf(trigger).SaveErrorAsync(trigger.Name, null, time.GetUtcNow(), ct).ConfigureAwait(false);
        return new CycleResult(true, poll, started, failed);
    }

    private async Task StartAsync(RegisteredTrigger trigger, TriggerBatch batch, List<string> started, List<string> failed, CancellationToken ct)
    {
        try
        {
            await starter.StartAsync(trigger, batch, ct).ConfigureAwait(false);
        }
        catch (PipelinesException e) when (!e.RetryHelps)
        {
            // It never will start (the workflow no longer parses, an image does not exist, no
            // object matched group_by): the batch ends failed with the reason, its objects stay
            // claimed by it, and nothing is retried in a loop.
            await LedgerOf(trigger).FinishBatchAsync(batch.RunId, started: false, e.Message, time.GetUtcNow(), ct).ConfigureAwait(false);
            LogBatchFailed(log, trigger.Name, batch.RunId, e.Message);
            failed.Add(batch.RunId);
            return;
        }

        // An outage (thrown above as retryable, or any other exception) leaves the batch claimed
        // for the next cycle. If the run was queued but this update is lost, the next cycle finds
        // the run and only re-enqueues its still-queued tasks: the run is never created twice.
        await LedgerOf(trigger).FinishBatchAsync(batch.RunId, started: true, null, time.GetUtcNow(), ct).ConfigureAwait(false);
        if ((batch.LandedAt ?? batch.FirstSeenAt) is { } landed)
        {
            // Landed is the bucket's clock, now ours: a skewed bucket clock would give a negative lag, which TriggerLagged clamps at 0.
            Telemetry.EngineMetrics.TriggerLagged(trigger.Name, (time.GetUtcNow() - landed).TotalSeconds);
        }

        LogRunStarted(log, trigger.Name, batch.RunId, batch.Objects.Count, (time.GetUtcNow() - batch.ClaimedAt).TotalMilliseconds);
        started.Add(batch.RunId);
    }

    private async Task<PollOutcome> PollAsync(RegisteredTrigger trigger, bool reconcile, CancellationToken ct)
    {
        var state = await LedgerOf(trigger).GetPollStateAsync(trigger.Name, ct).ConfigureAwait(false);
        var (full, startAfter) = ListingRule.Choose(state, reconcile, options.FullListingLimit);
        var at = time.GetUtcNow();
        var (listed, recorded, last) = await ListIntoLedgerAsync(stores, LedgerOf(trigger), trigger, startAfter, LedgerState.Pending, full ? (reconcile ? "reconcile" : "full") : "incremental", at, ct).ConfigureAwait(false);
        var outcome = new PollOutcome(at, full ? (reconcile ? "reconcile" : "full") : "incremental", listed, recorded, last, null);
        await LedgerOf(trigger).SavePollAsync(trigger.Name, outcome, full, ct).ConfigureAwait(false);
        if (recorded > 0)
        {
            LogRecorded(log, trigger.Name, recorded, outcome.Mode, listed);
        }

        return outcome;
    }

    /// <summary>
    /// Lists the trigger's prefix (after <paramref name="startAfter"/>, or all) and records the
    /// versions that match its globs with the given state, in chunks. Keys that escape the prefix
    /// are recorded as rejected, with the reason. Returns how many objects were listed, how many
    /// rows were new, and the last key listed (the next incremental checkpoint).
    /// </summary>
    internal static async Task<(long Listed, int Recorded, string? LastKey)> ListIntoLedgerAsync(
        ObjectStoreFactory stores, ITriggerStore ledger, RegisteredTrigger trigger, string? startAfter, LedgerState state, string source, DateTimeOffset now, CancellationToken ct)
    {
        var location = stores.Open(trigger.Uri);
        if (location.Bucket is null)
        {
            throw new PipelinesException($"trigger.uri {trigger.Uri}: a trigger watches a bucket (s3://bucket/prefix/)", retryHelps: false);
        }

        var filter = new GlobFilter(trigger.Include, trigger.Exclude);
        var outputs = TriggerKeys.OutputScope(trigger);
        var chunk = new List<(LedgerObject, LedgerState, string?)>(RecordChunk);
        long listed = 0;
        var recorded = 0;
        string? last = null;
        await foreach (var o in location.Store.ListAsync(location.Prefix, startAfter, ct).ConfigureAwait(false))
        {
            listed++;
            last = o.Key;
            var relative = o.Key[location.Prefix.Length..];
            if ((TriggerKeys.Problem(relative) ?? TriggerKeys.OutputProblem(outputs, relative)) is { } problem)
            {
                chunk.Add((new LedgerObject(o.Key, o.Size, o.ETag ?? "-"), LedgerState.Rejected, problem));
            }
            else if (filter.IsMatch(relative))
            {
                chunk.Add((new LedgerObject(o.Key, o.Size, o.ETag ?? "") { LandedAt = o.LastModified }, state, null));
            }

            if (chunk.Count == RecordChunk)
            {
                recorded += await ledger.RecordAsync(trigger.Name, location.Bucket, chunk, source, now, ct).ConfigureAwait(false);
                chunk.Clear();
            }
        }

        recorded += await ledger.RecordAsync(trigger.Name, location.Bucket, chunk, source, now, ct).ConfigureAwait(false);
        return (listed, recorded, last);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "trigger {Workflow}: {Recorded} new object version(s) ({Mode} listing of {Listed})")]
    private static partial void LogRecorded(ILogger logger, string workflow, int recorded, string mode, long listed);

    [LoggerMessage(Level = LogLevel.Information, Message = "trigger {Workflow}: run {RunId} started over {Objects} object(s), {Milliseconds:0} ms after the claim")]
    private static partial void LogRunStarted(ILogger logger, string workflow, string runId, int objects, double milliseconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "trigger {Workflow}: finishing the start of run {RunId} ({Objects} object(s)) that a stopped process claimed")]
    private static partial void LogResuming(ILogger logger, string workflow, string runId, int objects);

    [LoggerMessage(Level = LogLevel.Error, Message = "trigger {Workflow}: run {RunId} cannot start: {Error}")]
    private static partial void LogBatchFailed(ILogger logger, string workflow, string runId, string error);
}
