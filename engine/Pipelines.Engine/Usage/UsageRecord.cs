using Pipelines.Tenancy;

namespace Pipelines.Usage;

/// <summary>
/// What one task delivery or one function invocation used, the usage ledger's one row
/// (docs/tenants.md). Keyed by <see cref="Id"/>: <c>RUN/INDEX/DELIVERY</c> for a task's delivery
/// (<see cref="TaskId"/>), the invocation's id for an invocation, so a redelivered job or a
/// repeated write never counts twice. Figures a record could not measure are null, never zero.
/// </summary>
/// <param name="Id">The key: one record per delivery or invocation however often it is written.</param>
/// <param name="Tenant">Whose work it was.</param>
/// <param name="Kind"><see cref="UsageKinds.Task"/> or <see cref="UsageKinds.Invocation"/>.</param>
/// <param name="StartedAt">When the delivery claimed the task, or the invocation began.</param>
/// <param name="EndedAt">When it ended; the ledger's time (periods and buckets are by it).</param>
/// <param name="Outcome">How it ended (<see cref="UsageOutcomes"/>): wasted work is vacated or failed.</param>
public sealed record UsageRecord(string Id, TenantId Tenant, string Kind, DateTimeOffset StartedAt, DateTimeOffset EndedAt, string Outcome)
{
    /// <summary>The run of a task's delivery; null for an invocation.</summary>
    public string? RunId { get; init; }

    /// <summary>The task's index in its run; null for an invocation.</summary>
    public int? TaskIndex { get; init; }

    /// <summary>The task's delivery, from 1 (IRunStore.ClaimTaskAsync counts them); null for an invocation.</summary>
    public int? Delivery { get; init; }

    /// <summary>The function of an invocation; null for a task.</summary>
    public string? Function { get; init; }

    /// <summary>The function's version that answered; null for a task, or an invocation no version answered.</summary>
    public int? Version { get; init; }

    /// <summary>How the invocation was routed (stable, canary, shadow); null for a task.</summary>
    public string? Route { get; init; }

    /// <summary>The worker (or server) that did the work; null when unknown.</summary>
    public string? Worker { get; init; }

    /// <summary>Wall seconds the work took, to the millisecond (<see cref="Seconds"/>).</summary>
    public double WallSeconds { get; init; }

    /// <summary>CPU seconds from the container's cgroup; null where not measured (<see cref="Reason"/> says why when known).</summary>
    public double? CpuSeconds { get; init; }

    /// <summary>The highest memory any of its containers held, in bytes; null where not measured.</summary>
    public long? PeakMemoryBytes { get; init; }

    /// <summary>The memory reserved for it (a step's or function's <c>resources.memory</c>; the largest of a task's steps).</summary>
    public long? ReservedMemoryBytes { get; init; }

    /// <summary>Reserved GiB times wall seconds, summed over a task's step attempts (AWS Lambda's GB-seconds); null where not known.</summary>
    public double? GbSeconds { get; init; }

    /// <summary>Bytes it read in: a task's staged inputs, an invocation's request body.</summary>
    public long BytesIn { get; init; }

    /// <summary>Bytes it left: a task's kept outputs, an invocation's response body.</summary>
    public long BytesOut { get; init; }

    /// <summary>Whether it ran in the kernel's idle class (harvested time, priced with the sheet's discount).</summary>
    public bool Harvested { get; init; }

    /// <summary>Why, where the outcome needs it: a vacate by the machine's owner, a lost worker, a figure not measured.</summary>
    public string? Reason { get; init; }

    /// <summary>The key of a task's delivery.</summary>
    public static string TaskId(string runId, int index, int delivery) => $"{runId}/{index}/{delivery}";

    /// <summary>Seconds to the millisecond, the ledger's resolution (as Lambda bills).</summary>
    public static double Seconds(double seconds) => Math.Round(seconds, 3, MidpointRounding.AwayFromZero);

    /// <summary>GiB-seconds of <paramref name="bytes"/> reserved for <paramref name="seconds"/>.</summary>
    public static double GbSecondsOf(long bytes, double seconds) => bytes / (double)(1L << 30) * seconds;

    /// <summary>Whether it is wasted work (HTCondor's bad put): vacated or failed.</summary>
    public bool Wasted => UsageOutcomes.IsWasted(Outcome);
}

/// <summary>What a usage record is of.</summary>
public static class UsageKinds
{
    public const string Task = "task";
    public const string Invocation = "invocation";
}

/// <summary>How the work of a usage record ended.</summary>
public static class UsageOutcomes
{
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    /// <summary>Stopped before its end and handed to another delivery: a vacate by the machine's owner, or a lost worker.</summary>
    public const string Vacated = "vacated";

    /// <summary>An invocation refused before it ran (a quota, a bad request).</summary>
    public const string Refused = "refused";

    /// <summary>The reason of a delivery whose worker was lost (killed, or the delivery ended without a commit).</summary>
    public const string WorkerLost = "worker lost: the delivery ended without recording its end; wall up to its lease's last renewal, CPU not measured";

    public static IReadOnlyList<string> All { get; } = [Succeeded, Failed, Cancelled, Vacated, Refused];

    /// <summary>Whether work that ended so is wasted (HTCondor's bad put): vacated or failed.</summary>
    public static bool IsWasted(string outcome) => outcome is Vacated or Failed;
}
