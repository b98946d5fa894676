using Microsoft.Extensions.Logging;
using Pipelines.Model;
using Pipelines.Tenancy;

namespace Pipelines.Triggers;

/// <summary>What became of one record of an event body, for one trigger (or for none).</summary>
public enum IngestOutcome
{
    /// <summary>A new object version, recorded for a trigger.</summary>
    Accepted,

    /// <summary>The version was in the ledger already (a repeated event, or the watcher saw it first).</summary>
    Duplicate,

    /// <summary>A removal: pending versions of the key will not get a run.</summary>
    Removed,

    /// <summary>Not work for any trigger: another kind of event, a key outside every trigger's uri or globs.</summary>
    Ignored,

    /// <summary>Refused: an unknown bucket, a missing field, a key that escapes the prefix.</summary>
    Rejected,
}

/// <summary>One line of an ingest's answer.</summary>
public sealed record IngestNote(int Record, string? Workflow, string? Bucket, string? Key, IngestOutcome Outcome, string Reason)
{
    public override string ToString() =>
        $"record {Record}{(Workflow is null ? "" : $" ({Workflow})")}{(Key is null ? "" : $" s3://{Bucket}/{Key}")}: {Outcome.ToString().ToLowerInvariant()}: {Reason}";
}

/// <summary>The answer to one event body. <see cref="Malformed"/> bodies were not events at all.</summary>
public sealed record IngestResult(bool Malformed, string? Note, IReadOnlyList<IngestNote> Notes)
{
    public int Accepted => Count(IngestOutcome.Accepted);

    public int Duplicates => Count(IngestOutcome.Duplicate);

    public int Removed => Count(IngestOutcome.Removed);

    public int Ignored => Count(IngestOutcome.Ignored);

    public int Rejected => Count(IngestOutcome.Rejected);

    public string Summary =>
        Malformed ? Note ?? "malformed event body"
        : $"{Notes.Select(n => n.Record).Distinct().Count()} record(s): {Accepted} accepted, {Duplicates} already recorded, {Removed} removed, {Ignored} ignored, {Rejected} rejected" + (Note is null ? "" : $" ({Note})");

    private int Count(IngestOutcome o) => Notes.Count(n => n.Outcome == o);
}

/// <summary>
/// Feeds S3 event notifications into the triggers' ledger: the webhook's whole logic, as a plain
/// class that an HTTP endpoint (or `pipelines triggers ingest`) calls with the request body. It
/// only records: runs are cut by the trigger role after settle, the same as for watched objects,
/// so a webhook and a watcher reporting the same version, or one event delivered twice, make one
/// ledger row and at most one run. Bad input is answered record by record and never throws,
/// except for an outage of PostgreSQL (the endpoint answers 5xx and the sender retries).
/// </summary>
public sealed partial class S3EventIngest(ITriggerStore ledger, TimeProvider time, ILogger<S3EventIngest> log)
{
    /// <summary>
    /// The ingest of a caller in <paramref name="scope"/>: its events are matched only against that
    /// tenant's registered workflows (every tenant's for <see cref="TenantScope.All"/>), so one tenant's
    /// notifications never record work for another's trigger, and its answers name none of them.
    /// </summary>
    public S3EventIngest For(TenantScope scope) => new(ledger.For(scope), time, log);

    /// <summary>The ledger as the trigger's own tenant keeps it (the store names a workflow within a tenant).</summary>
    private ITriggerStore LedgerOf(RegisteredTrigger trigger) => ledger.For(TenantScope.Of(trigger.Tenant));

    public async Task<IngestResult> HandleAsync(string jsonBody, CancellationToken cancellationToken)
    {
        S3EventBody body;
        try
        {
            body = S3EventParser.Parse(jsonBody);
        }
        catch (MalformedEventException e)
        {
            LogMalformed(log, e.Message);
            return new IngestResult(true, e.Message, []);
        }

        var triggers = await ledger.ListAsync(cancellationToken).ConfigureAwait(false);
        var notes = new List<IngestNote>();
        foreach (var r in body.Records)
        {
            notes.AddRange(await HandleRecordAsync(r, triggers, cancellationToken).ConfigureAwait(false));
        }

        foreach (var n in notes.Where(n => n.Outcome == IngestOutcome.Rejected))
        {
            LogRejected(log, n.ToString());
        }

        return new IngestResult(false, body.Note, notes);
    }

    private async Task<List<IngestNote>> HandleRecordAsync(S3EventRecord r, IReadOnlyList<RegisteredTrigger> triggers, CancellationToken ct)
    {
        IngestNote Note(IngestOutcome outcome, string reason, string? workflow = null) => new(r.Index, workflow, r.Bucket, r.Key, outcome, reason);

        if (r.Kind == S3EventKind.Other)
        {
            return [Note(r.EventName.Length == 0 ? IngestOutcome.Rejected : IngestOutcome.Ignored,
                r.EventName.Length == 0 ? "the record has no eventName" : $"event '{r.EventName}' is neither ObjectCreated nor ObjectRemoved")];
        }

        if (string.IsNullOrEmpty(r.Bucket) || string.IsNullOrEmpty(r.Key))
        {
            return [Note(IngestOutcome.Rejected, "the record has no s3.bucket.name or s3.object.key")];
        }

        var onBucket = triggers.Where(t => t.Bucket == r.Bucket).ToList();
        if (onBucket.Count == 0)
        {
            return [Note(IngestOutcome.Rejected, $"no registered trigger watches bucket '{r.Bucket}'")];
        }

        var now = time.GetUtcNow();
        var notes = new List<IngestNote>();
        foreach (var t in onBucket.Where(t => r.Key.StartsWith(t.Prefix, StringComparison.Ordinal)))
        {
            var relative = r.Key[t.Prefix.Length..];
            if ((TriggerKeys.Problem(relative) ?? TriggerKeys.OutputProblem(TriggerKeys.OutputScope(t), relative)) is { } problem)
            {
                // Recorded, so `pipelines triggers` counts it; it never becomes a pending version.
                await LedgerOf(t).RecordAsync(t.Name, r.Bucket, [(new LedgerObject(r.Key, r.Size ?? 0, r.ETag ?? "-"), LedgerState.Rejected, problem)], "event", now, ct).ConfigureAwait(false);
                notes.Add(Note(IngestOutcome.Rejected, problem, t.Name));
                continue;
            }

            if (!new GlobFilter(t.Include, t.Exclude).IsMatch(relative))
            {
                notes.Add(Note(IngestOutcome.Ignored, $"matches no include glob of the trigger ({string.Join(", ", t.Include)})", t.Name));
                continue;
            }

            if (r.Kind == S3EventKind.Removed)
            {
                var removed = await LedgerOf(t).MarkDeletedAsync(t.Name, r.Bucket, r.Key, now, ct).ConfigureAwait(false);
                notes.Add(Note(IngestOutcome.Removed, removed > 0 ? $"{removed} pending version(s) will not get a run" : "no pending version (a run took it already, or none was recorded)", t.Name));
                continue;
            }

            if (r.ETag is null || r.Size is null)
            {
                notes.Add(Note(IngestOutcome.Rejected, "an ObjectCreated record needs s3.object.eTag and s3.object.size", t.Name));
                continue;
            }

            var recorded = await LedgerOf(t).RecordAsync(t.Name, r.Bucket, [(new LedgerObject(r.Key, r.Size.Value, r.ETag) { LandedAt = r.EventTime }, LedgerState.Pending, null)], "event", now, ct).ConfigureAwait(false);
            notes.Add(recorded == 1
                ? Note(IngestOutcome.Accepted, $"new version {r.ETag}, waits {Quantities.FormatDuration(t.Settle)} of quiet for a run", t.Name)
                : Note(IngestOutcome.Duplicate, $"version {r.ETag} is in the ledger already", t.Name));
        }

        if (notes.Count == 0)
        {
            notes.Add(Note(IngestOutcome.Ignored, $"not under the uri of any trigger on bucket '{r.Bucket}' ({string.Join(", ", onBucket.Select(t => t.Uri))})"));
        }

        return notes;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "trigger event refused: {Reason}")]
    private static partial void LogMalformed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "trigger event record refused: {Note}")]
    private static partial void LogRejected(ILogger logger, string note);
}
