using Pipelines.Tenancy;

namespace Pipelines.Triggers;

/// <summary>
/// A registered workflow with a trigger block: its YAML as registered (with the --set overrides
/// and the folder relative paths resolve against), and the trigger's fields that the ledger needs
/// without parsing the YAML again.
/// </summary>
public sealed record RegisteredTrigger(
    string Name,
    string Yaml,
    string Source,
    string? BaseDirectory,
    IReadOnlyList<string> Overrides,
    string Uri,
    string Bucket,
    string Prefix,
    IReadOnlyList<string> Include,
    IReadOnlyList<string> Exclude,
    TimeSpan Settle,
    DateTimeOffset RegisteredAt)
{
    /// <summary>The tenant that registered the workflow; a tenant's view of the store stamps it (docs/tenants.md).</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;

    /// <summary>The Hangfire recurring job's id, readable on the dashboard.</summary>
    public string RecurringJobId => RecurringJobIdOf(JobKey);

    /// <summary>What the recurring job carries to name this trigger (<see cref="JobKeyOf"/>).</summary>
    public string JobKey => JobKeyOf(Tenant, Name);

    /// <summary>The recurring job's id for a job key: trigger:NAME, or trigger:TENANT/NAME.</summary>
    public static string RecurringJobIdOf(string jobKey) => "trigger:" + jobKey;

    /// <summary>
    /// A trigger's key in its recurring job: the name for the default tenant (the key every
    /// deployment before tenants has, so its job stays the same), TENANT/NAME for another (neither
    /// a tenant id nor a workflow name holds a '/').
    /// </summary>
    public static string JobKeyOf(TenantId tenant, string name) => tenant.IsDefault ? name : $"{tenant}/{name}";

    /// <summary>The tenant and the name a job key names (<see cref="JobKeyOf"/>); null for a key no trigger can have.</summary>
    public static (TenantId Tenant, string Name)? ParseJobKey(string key)
    {
        var slash = key.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
        {
            return (TenantId.Default, key);
        }

        return TenantId.TryParse(key[..slash]) is { } tenant ? (tenant, key[(slash + 1)..]) : null;
    }
}

/// <summary>Where an object version is in the ledger.</summary>
public enum LedgerState
{
    /// <summary>Seen, waiting for settle and a run.</summary>
    Pending,

    /// <summary>Taken by a run (the row names the run id).</summary>
    Claimed,

    /// <summary>Was there when the trigger was registered: not new work.</summary>
    Baseline,

    /// <summary>Deleted (an ObjectRemoved event) before a run took it.</summary>
    Deleted,

    /// <summary>Never work: the key escapes the prefix. The row keeps the reason.</summary>
    Rejected,

    /// <summary>Pending when the trigger's uri changed: left behind with the old uri.</summary>
    Dropped,
}

/// <summary>One object version as the ledger knows it; <see cref="Key"/> is the full key in the bucket.</summary>
public sealed record LedgerObject(string Key, long Size, string ETag)
{
    /// <summary>
    /// When the version landed in the bucket, by the bucket's clock: its Last-Modified in a listing, or
    /// the S3 event's eventTime; null when the reporter did not say. Kept as first recorded (the trigger lag starts here).
    /// </summary>
    public DateTimeOffset? LandedAt { get; init; }
}

/// <summary>A group of object versions claimed for one run, recorded before the run is created.</summary>
public sealed record TriggerBatch(string RunId, string Workflow, IReadOnlyList<LedgerObject> Objects, DateTimeOffset ClaimedAt)
{
    /// <summary>When the ledger first saw the batch's oldest object (its listing or its event); null for a batch resumed after a stop.</summary>
    public DateTimeOffset? FirstSeenAt { get; init; }

    /// <summary>
    /// When the batch's oldest object landed in the bucket (<see cref="LedgerObject.LandedAt"/>, or its
    /// first sighting where that is unknown), for the trigger lag; null for a batch resumed after a stop.
    /// </summary>
    public DateTimeOffset? LandedAt { get; init; }
}

/// <summary>The objects waiting for a run: how many, and when the newest of them was first seen.</summary>
public sealed record PendingObjects(int Count, DateTimeOffset? NewestSeenAt);

/// <summary>The poll checkpoint of one trigger.</summary>
public sealed record TriggerPollState(string? StartAfter, DateTimeOffset? LastFullAt, long? LastFullListed);

/// <summary>What one poll did, for `pipelines triggers`.</summary>
public sealed record PollOutcome(DateTimeOffset At, string Mode, long Listed, int Recorded, string? StartAfter, string? Error);

/// <summary>One line of `pipelines triggers`.</summary>
public sealed record TriggerSummary(
    string Name,
    string Uri,
    TimeSpan Settle,
    DateTimeOffset RegisteredAt,
    DateTimeOffset? LastPollAt,
    string? LastPollMode,
    long? LastPollListed,
    string? LastError,
    DateTimeOffset? LastErrorAt,
    long ObjectsSeen,
    long Pending,
    long Baseline,
    long Rejected,
    long RunsStarted,
    long BatchesFailed,
    string? LastRunId,
    DateTimeOffset? LastRunAt)
{
    /// <summary>The tenant whose workflow this is.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;
}
