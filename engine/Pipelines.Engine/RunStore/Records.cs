using System.Text.Json.Serialization;
using Pipelines.Planning;
using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.RunStore;

/// <summary>Where a run is. Terminal states never change again.</summary>
public enum RunState { Running, Gathering, Succeeded, Failed, Cancelled }

/// <summary>
/// Where a task is. Terminal: succeeded, failed, cached, cancelled, and split (a failed batch
/// whose inputs went on as tasks of their own).
/// </summary>
public enum TaskState { Queued, Running, Succeeded, Failed, Cached, Cancelled, Split }

public static class States
{
    public static bool IsTerminal(this RunState s) => s is RunState.Succeeded or RunState.Failed or RunState.Cancelled;

    public static bool IsTerminal(this TaskState s) => s is TaskState.Succeeded or TaskState.Failed or TaskState.Cached or TaskState.Cancelled or TaskState.Split;

    public static string Name(this RunState s) => s.ToString().ToLowerInvariant();

    public static string Name(this TaskState s) => s.ToString().ToLowerInvariant();

    public static RunState ParseRun(string s) => Enum.Parse<RunState>(s, ignoreCase: true);

    public static TaskState ParseTask(string s) => Enum.Parse<TaskState>(s, ignoreCase: true);
}

/// <summary>
/// Why a run stops. A user's cancel is told apart from on_error: fail by its prefix, so that the
/// workers stop its running containers and the gather ends the run cancelled, not failed.
/// </summary>
internal static class StopReasons
{
    private const string CancelPrefix = "cancelled by ";

    public static string Cancel(string who) => CancelPrefix + who;

    public static bool IsCancel(string? reason) => reason is not null && reason.StartsWith(CancelPrefix, StringComparison.Ordinal);

    /// <summary>How a task of a stopping run that never started ends (a delivery of it, or the dispatcher's cancel of pending tasks).</summary>
    public static TaskOutcome NotStarted(string reason, DateTimeOffset now) => new(TaskState.Cancelled, null, "not started: " + reason, now);
}

/// <summary>Which runs to list: optional filters (a workflow, a state, created at or after a time, a tenant), newest first, one page.</summary>
public sealed record RunQuery(string? Workflow = null, RunState? State = null, int Offset = 0, int Limit = 50, DateTimeOffset? Since = null)
{
    /// <summary>Only this tenant's runs (a tenant's view of the store sets it; an admin may); null: every tenant's.</summary>
    public TenantId? Tenant { get; init; }

    /// <summary>
    /// Whether a run passes the filters: the rule of a listing kept in memory (the embedded
    /// store, the CLI's index of embedded runs, whose runs are the default tenant's); PostgreSQL's
    /// WHERE says the same, and the run store contract holds both to it.
    /// </summary>
    public bool Matches(string workflow, RunState state, DateTimeOffset createdAt, TenantId tenant = default) =>
        (Workflow is null || string.Equals(workflow, Workflow, StringComparison.Ordinal))
        && (State is null || state == State)
        && (Since is null || createdAt >= Since)
        && (Tenant is null || Tenant == tenant);
}

/// <summary>
/// Why a queued task is held back rather than waiting its turn: the kind (one of
/// <see cref="HoldReasons"/>), what the worker that held it said, which worker, and since when.
/// A task's next claim clears it.
/// </summary>
public sealed record TaskHold(string Reason, string Detail, string Worker, DateTimeOffset Since);

/// <summary>
/// The kinds of hold, one vocabulary for the run store (status, runs, the API, the run page) and
/// the held-tasks metric (pipelines.tasks.held's reason label). An open set: a new kind is one
/// more constant here, in <see cref="All"/> and <see cref="Describe"/>, counted the same way everywhere.
/// </summary>
internal static class HoldReasons
{
    /// <summary>The machine's owner needs it: under when-idle, the owner's load leaves no slot now.</summary>
    public const string OwnerLoad = "owner_load";

    /// <summary>The worker that took the task is draining: it starts nothing new.</summary>
    public const string Drain = "drain";

    /// <summary>The worker's harvesting policy is never: it lends nothing.</summary>
    public const string Policy = "policy";

    /// <summary>The tenant runs as many tasks as its running-tasks quota allows: the dispatcher releases no more until one ends.</summary>
    public const string Quota = "quota";

    /// <summary>The tenant's budget for the period is spent: the dispatcher releases none of its tasks until it is positive again.</summary>
    public const string Budget = "budget";

    /// <summary>Every kind, for what counts them from zero (the metric's series).</summary>
    public static readonly IReadOnlyList<string> All = [OwnerLoad, Drain, Policy, Quota, Budget];

    /// <summary>What a reason means, for people; a reason not known here (a newer engine's) is shown as it is.</summary>
    public static string Describe(string reason) => reason switch
    {
        OwnerLoad => "waiting for the machines' owners to leave room (Harvest:Policy when-idle)",
        Drain => "waiting: the worker that took them is draining",
        Policy => "waiting: the worker's harvesting policy lends nothing (Harvest:Policy never)",
        Quota => "waiting: the tenant runs as many tasks as its quota allows (Quotas:RunningTasks)",
        Budget => "waiting: the tenant's budget for this period is spent (Budget:Amount)",
        _ => reason,
    };
}

/// <summary>One task, by run and index.</summary>
public readonly record struct TaskKey(string RunId, int Index);

/// <summary>A tenant's queued work as the dispatcher sees it: pending (not released yet) and in flight (released or running).</summary>
public sealed record TenantLoad(TenantId Tenant, int Pending, int InFlight);


/// <summary>Which tasks of a run to list: an optional state, by task index, one page.</summary>
public sealed record TaskQuery(TaskState? State = null, int Offset = 0, int Limit = 100);

/// <summary>One page of a listing and how many items match in all.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, int Total);

/// <summary>A run as the run store keeps it. <see cref="DefinitionJson"/> is the resolved workflow and image digests.</summary>
public sealed record RunRecord(
    string RunId,
    string WorkflowName,
    string WorkflowYaml,
    string DefinitionJson,
    string OutputUri,
    RunState State,
    int TaskCount,
    int Remaining,
    DateTimeOffset CreatedAt,
    DateTimeOffset? FinishedAt,
    string? StopReason,
    string? Error)
{
    /// <summary>The tenant that owns the run (docs/tenants.md); a tenant's view of the store stamps it on creation.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;

    /// <summary>Who submitted the run (a key's name, "name (tenant)", a trigger), when it was recorded; null for runs from before it was.</summary>
    public string? SubmittedBy { get; init; }
}

/// <summary>A task as the run store keeps it.</summary>
public sealed record TaskRecord(
    string RunId,
    int Index,
    string TaskId,
    TaskState State,
    IReadOnlyList<InputFile> Inputs,
    IReadOnlyDictionary<string, string> Captures,
    int Attempts,
    long? ExitCode,
    string? Error,
    string? Worker,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt)
{
    /// <summary>The batch this task was split from, if it was.</summary>
    public int? ParentIndex { get; init; }

    /// <summary>Until when the running attempt's worker holds the task; a claim before then fails.</summary>
    public DateTimeOffset? LeaseUntil { get; init; }

    /// <summary>Why the task, still queued, is held back (<see cref="IRunStore.HoldTaskAsync"/>); null when it is not.</summary>
    public TaskHold? Hold { get; init; }
}

/// <summary>How a task attempt ended, written once by <see cref="IRunStore.CommitTaskAsync"/>.</summary>
public sealed record TaskOutcome(TaskState State, long? ExitCode, string? Error, DateTimeOffset FinishedAt)
{
    /// <summary>
    /// What the delivery that ends the task used, written to the usage ledger with the end, in its
    /// transaction, only by the call that ends the task; null for an end that ran nothing (a cached
    /// task, one the run's stop ended before it started).
    /// </summary>
    public UsageRecord? Usage { get; init; }
}

/// <summary>Counts of a run's tasks by state.</summary>
public sealed record TaskCounts(int Queued, int Running, int Succeeded, int Failed, int Cached, int Cancelled)
{
    /// <summary>Failed batches whose inputs went on as tasks of their own.</summary>
    public int Split { get; init; }

    /// <summary>Of the queued tasks, those held back (a worker could not take them for a reason of <see cref="HoldReasons"/>).</summary>
    public int Held => HeldBecause.Values.Sum();

    /// <summary>The held tasks by reason.</summary>
    public IReadOnlyDictionary<string, int> HeldBecause { get; init; } = new Dictionary<string, int>(StringComparer.Ordinal);

    /// <summary>Equal counts, the held ones by reason included (a record compares the dictionary by reference).</summary>
    public bool Equals(TaskCounts? other) =>
        other is not null
        && (Queued, Running, Succeeded, Failed, Cached, Cancelled, Split) == (other.Queued, other.Running, other.Succeeded, other.Failed, other.Cached, other.Cancelled, other.Split)
        && HeldBecause.Count == other.HeldBecause.Count
        && HeldBecause.All(h => other.HeldBecause.TryGetValue(h.Key, out var n) && n == h.Value);

    public override int GetHashCode() => HashCode.Combine(Queued, Running, Succeeded, Failed, Cached, Cancelled, Split, Held);

    public int Total => Queued + Running + Succeeded + Failed + Cached + Cancelled + Split;

    public int Ended => Succeeded + Failed + Cached + Cancelled + Split;
}

/// <summary>A stored file: key, size and sha256 of the bytes stored.</summary>
public sealed class FileRef
{
    [JsonPropertyName("key")]
    public string Key { get; set; } = "";

    [JsonPropertyName("size")]
    public long Size { get; set; }

    [JsonPropertyName("sha256")]
    public string Sha256 { get; set; } = "";
}

/// <summary>One row of provenance/tasks.parquet: one step of one task attempt.</summary>
public sealed class ProvenanceRow
{
    [JsonPropertyName("run_id")]
    public string RunId { get; set; } = "";

    [JsonPropertyName("task_id")]
    public string TaskId { get; set; } = "";

    [JsonPropertyName("task_index")]
    public int TaskIndex { get; set; }

    [JsonPropertyName("attempt")]
    public int Attempt { get; set; }

    [JsonPropertyName("step")]
    public string Step { get; set; } = "";

    [JsonPropertyName("status")]
    public string Status { get; set; } = "";

    [JsonPropertyName("exit_code")]
    public long? ExitCode { get; set; }

    [JsonPropertyName("image")]
    public string Image { get; set; } = "";

    [JsonPropertyName("image_digest")]
    public string ImageDigest { get; set; } = "";

    [JsonPropertyName("command")]
    public List<string> Command { get; set; } = [];

    [JsonPropertyName("inputs")]
    public List<FileRef> Inputs { get; set; } = [];

    [JsonPropertyName("outputs")]
    public List<FileRef> Outputs { get; set; } = [];

    [JsonPropertyName("log")]
    public string? Log { get; set; }

    [JsonPropertyName("started_at")]
    public DateTime StartedAt { get; set; }

    [JsonPropertyName("finished_at")]
    public DateTime FinishedAt { get; set; }

    [JsonPropertyName("worker")]
    public string Worker { get; set; } = "";

    [JsonPropertyName("error")]
    public string? Error { get; set; }

    [JsonPropertyName("cached_from")]
    public string? CachedFrom { get; set; }

    /// <summary>
    /// Why the task ran rather than being taken from the cache, as decided when the cache was
    /// consulted (Explain.RanBecause as JSON); null on cached rows and on rows of older engines.
    /// </summary>
    [JsonPropertyName("ran_because")]
    public string? RanBecause { get; set; }

    // What the attempt used (Containers.ResourceUse, measured from its container's cgroup); null
    // where it was not measured: a step that did not start, a counter the kernel does not keep,
    // a cached row, a row of an older engine.

    /// <summary>CPU time of every process of the container, user and system, in seconds.</summary>
    [JsonPropertyName("cpu_seconds")]
    public double? CpuSeconds { get; set; }

    /// <summary>The container's peak memory as its memory cgroup counted it (page cache and /tmp included), in bytes.</summary>
    [JsonPropertyName("peak_memory_bytes")]
    public long? PeakMemoryBytes { get; set; }

    /// <summary>Bytes the container read from block devices, as its cgroup counted them.</summary>
    [JsonPropertyName("read_bytes")]
    public long? ReadBytes { get; set; }

    /// <summary>Bytes the container wrote to block devices, as its cgroup counted them.</summary>
    [JsonPropertyName("written_bytes")]
    public long? WrittenBytes { get; set; }

    /// <summary>The container's run from its start to its exit, as the worker timed it, in seconds.</summary>
    [JsonPropertyName("wall_seconds")]
    public double? WallSeconds { get; set; }

    // How the attempt got its image when the worker's engine lacked it (Containers.ImageArrival);
    // both null when the image was there, on a cached row, and on a row of an older engine.

    /// <summary>Seconds this attempt spent on its image: its own load or pull, or its wait for another task's load of the same digest.</summary>
    [JsonPropertyName("image_load_seconds")]
    public double? ImageLoadSeconds { get; set; }

    /// <summary>What happened: "loaded from the algorithm store", "pulled from its registry as NAME", or "waited for this worker's load (or pull) of it ...".</summary>
    [JsonPropertyName("image_load")]
    public string? ImageLoad { get; set; }

    // Where the attempt is in the traces (docs/operations.md, Tracing): null on rows of older
    // engines. A cached row, or a failure before any step ran, names its task's span.

    /// <summary>The trace of the run this row belongs to (32 hex digits, W3C).</summary>
    [JsonPropertyName("trace_id")]
    public string? TraceId { get; set; }

    /// <summary>The span of this attempt in that trace (16 hex digits).</summary>
    [JsonPropertyName("span_id")]
    public string? SpanId { get; set; }
}
