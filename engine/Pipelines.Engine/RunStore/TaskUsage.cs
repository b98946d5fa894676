using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.RunStore;

/// <summary>
/// The usage records of task deliveries, one home for how a delivery's figures come from its
/// provenance rows (so that a run's usage is the sum of its rows' figures, as UsageRunTests checks)
/// and for the record of a delivery whose worker was lost.
/// </summary>
internal static class TaskUsage
{
    /// <summary>
    /// The record of one delivery from the rows of its own step attempts (not the vacated ones of
    /// earlier deliveries it commits with them): wall, CPU, read and written sums; peak the largest;
    /// GB-seconds each attempt's reserved memory (<paramref name="reservedMemory"/> of its step) times
    /// its wall; bytes in the staged inputs (inputs no attempt of the delivery made), bytes out the
    /// kept outputs. CPU is null when no attempt measured it.
    /// </summary>
    public static UsageRecord Of(RunRecord run, int index, int delivery, string worker, DateTimeOffset claimedAt, DateTimeOffset endedAt, string outcome, IReadOnlyList<ProvenanceRow> rows, Func<string, long?> reservedMemory, bool harvested, string? reason = null)
    {
        double wall = 0, cpu = 0, gbs = 0;
        bool cpuKnown = false, gbsKnown = rows.Count > 0;
        long? peak = null, reserved = null;
        var made = rows.SelectMany(r => r.Outputs).Select(f => f.Key).ToHashSet(StringComparer.Ordinal);
        var staged = new Dictionary<string, long>(StringComparer.Ordinal);
        long bytesOut = 0;
        foreach (var row in rows)
        {
            var w = WallOf(row);
            wall += w;
            if (row.CpuSeconds is { } c)
            {
                cpu += c;
                cpuKnown = true;
            }

            if (row.PeakMemoryBytes is { } p && (peak is null || p > peak))
            {
                peak = p;
            }

            if (reservedMemory(row.Step) is { } m)
            {
                reserved = reserved is null || m > reserved ? m : reserved;
                gbs += UsageRecord.GbSecondsOf(m, w);
            }
            else
            {
                gbsKnown = false;
            }

            foreach (var f in row.Inputs.Where(f => !made.Contains(f.Key)))
            {
                staged[f.Key] = f.Size;
            }

            if (row.Status == "succeeded")
            {
                bytesOut += row.Outputs.Sum(f => f.Size);
            }
        }

        return new UsageRecord(UsageRecord.TaskId(run.RunId, index, delivery), run.Tenant, UsageKinds.Task, claimedAt, endedAt, outcome)
        {
            RunId = run.RunId,
            TaskIndex = index,
            Delivery = delivery,
            Worker = worker,
            WallSeconds = UsageRecord.Seconds(wall),
            CpuSeconds = cpuKnown ? cpu : null,
            PeakMemoryBytes = peak,
            ReservedMemoryBytes = reserved,
            GbSeconds = gbsKnown ? gbs : null,
            BytesIn = staged.Values.Sum(),
            BytesOut = bytesOut,
            Harvested = harvested,
            Reason = reason ?? (cpuKnown || rows.Count == 0 ? null : "CPU not measured"),
        };
    }

    /// <summary>An attempt's wall: its container's, or, where none ran (a failure in staging), its row's span.</summary>
    public static double WallOf(ProvenanceRow row) => row.WallSeconds ?? Math.Max(0, (row.FinishedAt - row.StartedAt).TotalSeconds);

    /// <summary>
    /// The record of delivery <paramref name="delivery"/> whose worker was lost (killed, or the
    /// delivery ended without a commit), made when the task is claimed again at <paramref name="now"/>:
    /// vacated, its wall up to the lease's last renewal (its lease's end less the lease's length,
    /// <paramref name="leaseUntil"/> - <paramref name="now"/> of the new claim), CPU not measured.
    /// PostgresRunStore.ClaimTaskAsync writes the same in SQL.
    /// </summary>
    public static UsageRecord Lost(string runId, int index, int delivery, TenantId tenant, string? worker, DateTimeOffset startedAt, DateTimeOffset? lastLeaseUntil, DateTimeOffset now, DateTimeOffset leaseUntil)
    {
        var renewed = lastLeaseUntil is { } until ? until - (leaseUntil - now) : startedAt;
        var ended = renewed < startedAt ? startedAt : renewed > now ? now : renewed;
        return new UsageRecord(UsageRecord.TaskId(runId, index, delivery), tenant, UsageKinds.Task, startedAt, ended, UsageOutcomes.Vacated)
        {
            RunId = runId,
            TaskIndex = index,
            Delivery = delivery,
            Worker = worker,
            WallSeconds = UsageRecord.Seconds((ended - startedAt).TotalSeconds),
            Reason = UsageOutcomes.WorkerLost,
        };
    }
}
