namespace Pipelines.Harvest;

/// <summary>
/// The machine's load over one sampling interval, split into the owner's (everything that is not
/// ours) and ours (the containers under the engine's cgroup parent). CPU is in cores: 1.5 is
/// one and a half cores busy.
/// </summary>
public sealed record OwnerSample(
    DateTimeOffset At,
    int Cores,
    double HostCpu,
    double OursCpu,
    long MemoryTotal,
    long MemoryAvailable,
    long OursMemory)
{
    /// <summary>The owner's CPU as its own cgroup counted it, when the owner is a cgroup (Harvest:OwnerCgroup).</summary>
    public double? OwnerCgroupCpu { get; init; }

    /// <summary>The owner's memory as its own cgroup counted it, when the owner is a cgroup.</summary>
    public long? OwnerCgroupMemory { get; init; }

    /// <summary>Cores the owner kept busy: its cgroup's, or else the host's busy time less our containers'.</summary>
    public double OwnerCpu => OwnerCgroupCpu ?? Math.Max(0, HostCpu - OursCpu);

    /// <summary>The owner's share of the machine's CPU, 0 to 1.</summary>
    public double OwnerFraction => Cores > 0 ? Math.Clamp(OwnerCpu / Cores, 0, 1) : 0;

    /// <summary>Memory the owner holds: what is in use less what our containers hold.</summary>
    public long OwnerMemory => OwnerCgroupMemory ?? Math.Max(0, MemoryTotal - MemoryAvailable - OursMemory);

    /// <summary>The share of the machine's memory still available, 0 to 1.</summary>
    public double FreeMemoryFraction => MemoryTotal > 0 ? Math.Clamp((double)MemoryAvailable / MemoryTotal, 0, 1) : 1;
}
