namespace Pipelines.Containers.Cgroups;

/// <summary>
/// The cgroup file systems of a machine, one implementation per kind (<see cref="CgroupV1"/>,
/// <see cref="CgroupV2"/>, <see cref="CgroupHybrid"/>; <see cref="CgroupMounts"/> picks the
/// machine's): the one home of which file holds what. A cgroup is named by its path from the
/// root of each hierarchy ("/pipelines/attempt-1f.../abc..."), as the engine names it. Nothing
/// here throws for a cgroup that is gone: its files read null and write false.
/// </summary>
public interface ICgroupHierarchy
{
    /// <summary>What this machine has, for the worker's start line ("cgroup v2", ...).</summary>
    string Name { get; }

    /// <summary>The folders of a cgroup in every hierarchy it may be in (to remove it, or find what is left).</summary>
    IReadOnlyList<string> Folders(string cgroup);

    /// <summary>The folder where a cgroup's CPU class is set (cpu.idle and the weight); null when no cpu controller is mounted.</summary>
    string? CpuFolder(string cgroup);

    /// <summary>The file and value of the lowest CPU weight, where a kernel has no cpu.idle.</summary>
    (string File, string Value) LowestWeight { get; }

    /// <summary>The file and value of the highest CPU weight (a synthetic owner's, in the tests).</summary>
    (string File, string Value) HighestWeight { get; }

    /// <summary>Makes a cgroup (where its CPU class is set), with the controllers handed down to it; false when it cannot be made.</summary>
    bool Make(string cgroup);

    /// <summary>Moves a process into a cgroup (made where needed) in every hierarchy whose counters are read here; false when the kernel refused.</summary>
    bool Enter(string cgroup, int pid);

    /// <summary>Freezes (or thaws) every process of a cgroup; false when the cgroup is not there or the kernel refused.</summary>
    bool Freeze(string cgroup, bool frozen);

    /// <summary>Where the freezer of a cgroup is.</summary>
    FreezerState FreezerState(string cgroup);

    /// <summary>Kills every process of a cgroup at once, frozen ones too (cgroup.kill, v2 on Linux 5.14+); false where that file is not there.</summary>
    bool Kill(string cgroup);

    /// <summary>A cgroup's CPU time so far, in nanoseconds; null when it cannot be read.</summary>
    long? CpuNanos(string cgroup);

    /// <summary>A cgroup's memory in use less its inactive file pages (as `docker stats` counts it); null when it cannot be read.</summary>
    long? WorkingSet(string cgroup);

    /// <summary>
    /// The counters of an attempt or a request: CPU time, peak memory, bytes read and written, each
    /// null with a note where it cannot be read. <paramref name="files"/> keeps the files open
    /// between readings (a warm container's, <see cref="CgroupFiles.Kept"/>); null opens them each time.
    /// </summary>
    CgroupReading Read(string cgroup, CgroupFiles? files = null);

    /// <summary>Starts a new peak of a cgroup's memory (for one warm request); false where the kernel cannot (v2 resets memory.peak for one open file only).</summary>
    bool ResetPeak(string cgroup, CgroupFiles? files = null);
}
