using Pipelines.Usage;

namespace Pipelines.Functions;

/// <summary>
/// The usage record of one ended invocation, one home for both function stores (written in their
/// "ends once" statement: IFunctionStore.FinishAsync, AddEndedAsync): keyed by the invocation's id,
/// wall its latency, CPU and peak memory as its warm container's cgroup grew for it (a fork-mode
/// request; an http-mode container serves requests side by side, so its growth is no one
/// request's: null, with that reason), GB-seconds its reserved memory times its wall.
/// </summary>
internal static class InvocationUsage
{
    public static UsageRecord Of(EndedInvocation ended)
    {
        var r = ended.Record;
        var end = ended.End;
        var wall = UsageRecord.Seconds(end.LatencyMs / 1000);
        var outcome = end.Status switch
        {
            InvocationStatus.Succeeded => UsageOutcomes.Succeeded,
            InvocationStatus.Refused => UsageOutcomes.Refused,
            _ => UsageOutcomes.Failed,
        };
        return new UsageRecord(r.Id, r.Tenant, UsageKinds.Invocation, r.StartedAt, ended.FinishedAt, outcome)
        {
            Function = r.Function,
            Version = r.Version,
            Route = r.ShadowOf is not null ? "shadow" : r.Route ?? "stable",
            WallSeconds = wall,
            CpuSeconds = end.Resources?.CpuSeconds,
            PeakMemoryBytes = (long?)end.Resources?.PeakMemoryBytes,
            ReservedMemoryBytes = end.ReservedMemoryBytes,
            GbSeconds = end.ReservedMemoryBytes is { } m ? UsageRecord.GbSecondsOf(m, wall) : null,
            BytesIn = r.InputBytes,
            BytesOut = r.OutputBytes ?? 0,
            Reason = end.Resources?.CpuSeconds is null ? end.ResourceNote ?? (end.ReservedMemoryBytes is null ? "not run: no container served it" : "CPU not measured") : null,
        };
    }
}
