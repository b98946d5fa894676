namespace Pipelines.Containers;

/// <summary>
/// What one attempt of a step used, as its container's cgroup counted it (CgroupMeter): the
/// columns cpu_seconds, peak_memory_bytes, read_bytes, written_bytes and wall_seconds of
/// provenance/tasks.parquet. Each is null where it was not measured (a counter that could not
/// be read, a file of an older engine), never a zero standing in for "unknown".
/// </summary>
public sealed record ResourceUse(double? CpuSeconds, double? PeakMemoryBytes, double? ReadBytes, double? WrittenBytes, double? WallSeconds)
{
    public static ResourceUse None { get; } = new(null, null, null, null, null);

    /// <summary>The column names, in the order of the properties.</summary>
    public static IReadOnlyList<string> Columns { get; } = ["cpu_seconds", "peak_memory_bytes", "read_bytes", "written_bytes", "wall_seconds"];
}
