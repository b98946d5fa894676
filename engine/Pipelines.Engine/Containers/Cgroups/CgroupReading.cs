namespace Pipelines.Containers.Cgroups;

/// <summary>One reading of a cgroup's counters; null where a counter could not be read, with <see cref="Notes"/> saying why.</summary>
public sealed record CgroupReading(long? CpuNanos, long? PeakMemoryBytes, long? ReadBytes, long? WrittenBytes, IReadOnlyList<string> Notes)
{
    /// <summary>The columns of a provenance row, with the wall time the runtime measured around the container's run.</summary>
    public ResourceUse Use(TimeSpan wall) => new(CpuNanos / 1e9, PeakMemoryBytes, ReadBytes, WrittenBytes, wall.TotalSeconds);

    /// <summary>
    /// What was used since <paramref name="before"/> (a warm request): the counters' growth,
    /// and the peak as it is now (after <see cref="ICgroupHierarchy.ResetPeak"/>; null when it could not be reset).
    /// </summary>
    public CgroupReading Since(CgroupReading before, bool peakWasReset) => new(
        CpuNanos - before.CpuNanos,
        peakWasReset ? PeakMemoryBytes : null,
        ReadBytes - before.ReadBytes,
        WrittenBytes - before.WrittenBytes,
        [.. before.Notes.Union(Notes, StringComparer.Ordinal), .. peakWasReset || PeakMemoryBytes is null ? [] : new[] { "peak memory not measured: the warm container's peak could not be started again for this request (memory.max_usage_in_bytes cannot be written, or cgroup v2, whose memory.peak starts again for one open file only)" }]);
}
