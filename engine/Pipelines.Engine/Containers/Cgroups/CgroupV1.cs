namespace Pipelines.Containers.Cgroups;

/// <summary>
/// cgroup v1 (the legacy hierarchy): a hierarchy per controller, each mounted on its own
/// (/sys/fs/cgroup/cpu, cpuacct, memory, freezer, ..., or several controllers on one mount such
/// as cpu,cpuacct). The CPU class is cpu.idle (Linux 5.15+) or cpu.shares, CPU time cpuacct.usage,
/// memory memory.usage_in_bytes and memory.max_usage_in_bytes, the freezer freezer.state. v1 has
/// no cgroup.kill and keeps no count of a container's I/O to trust (<see cref="NoBlockIo"/>).
/// </summary>
internal sealed class CgroupV1(IReadOnlyDictionary<string, string> mounts) : ICgroupHierarchy
{
    /// <summary>
    /// cgroup v1 has no count of a container's file I/O to trust: its blkio counts only bios that
    /// reach a block device in the container's cgroup, buffered writes are written back by the
    /// kernel outside it, and recent kernels count nothing on a device without a blk-throttle rule
    /// (here even direct writes under a rule counted 0). So the columns are null, and the log says why.
    /// </summary>
    public const string NoBlockIo = "bytes read and written not measured: cgroup v1 keeps no reliable count of a container's I/O (blkio misses buffered writes, which the kernel writes back outside the container's cgroup, and counts nothing on recent kernels without a blk-throttle rule); cgroup v2 counts them (io.stat)";

    /// <summary>The mount point of each controller (cpu, cpuacct, memory, freezer, ...; a named hierarchy such as name=systemd too).</summary>
    public IReadOnlyDictionary<string, string> Mounts => mounts;

    public string Name => "cgroup v1";

    public (string File, string Value) LowestWeight => ("cpu.shares", "2");

    public (string File, string Value) HighestWeight => ("cpu.shares", "262144");

    /// <summary>A cgroup's folder in one controller's hierarchy; null when that controller is not mounted.</summary>
    public string? PathOf(string controller, string cgroup) =>
        mounts.TryGetValue(controller, out var mount) ? CgroupFile.Under(mount, cgroup) : null;

    public IReadOnlyList<string> Folders(string cgroup) =>
        [.. mounts.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Select(m => CgroupFile.Under(m, cgroup))];

    public string? CpuFolder(string cgroup) => PathOf("cpu", cgroup);

    public bool Make(string cgroup)
    {
        if (CpuFolder(cgroup) is not { } cpu)
        {
            return false;
        }

        try
        {
            // The other controllers' folders the engine makes with the first container.
            Directory.CreateDirectory(cpu);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    public bool Enter(string cgroup, int pid)
    {
        var entered = true;
        foreach (var dir in new[] { "cpu", "cpuacct", "memory" }.Select(c => PathOf(c, cgroup)).OfType<string>())
        {
            try
            {
                Directory.CreateDirectory(dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                entered = false;
                continue;
            }

            entered &= CgroupFile.TryWrite(Path.Combine(dir, "cgroup.procs"), pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return entered;
    }

    public bool Freeze(string cgroup, bool frozen)
    {
        if (PathOf("freezer", cgroup) is not { } dir || CgroupFile.Read(Path.Combine(dir, "freezer.state")) is not { } now)
        {
            return false;
        }

        // Written even when it reads FREEZING: FROZEN again is harmless, and THAWED ends a freeze in progress.
        var value = frozen ? "FROZEN" : "THAWED";
        return now == value || CgroupFile.TryWrite(Path.Combine(dir, "freezer.state"), value);
    }

    public FreezerState FreezerState(string cgroup) =>
        (PathOf("freezer", cgroup) is { } dir ? CgroupFile.Read(Path.Combine(dir, "freezer.state")) : null) switch
        {
            "FROZEN" => Cgroups.FreezerState.Frozen,
            "FREEZING" => Cgroups.FreezerState.Freezing,
            "THAWED" => Cgroups.FreezerState.Thawed,
            _ => Cgroups.FreezerState.Gone,
        };

    public bool Kill(string cgroup) => false;

    public long? CpuNanos(string cgroup) =>
        PathOf("cpuacct", cgroup) is { } dir ? CgroupFile.ReadNumber(Path.Combine(dir, "cpuacct.usage")) : null;

    public long? WorkingSet(string cgroup)
    {
        if (PathOf("memory", cgroup) is not { } dir || CgroupFile.ReadNumber(Path.Combine(dir, "memory.usage_in_bytes")) is not { } usage)
        {
            return null;
        }

        var inactive = CgroupFile.Field(CgroupFile.Read(Path.Combine(dir, "memory.stat")), "total_inactive_file") ?? 0;
        return Math.Max(0, usage - inactive);
    }

    public CgroupReading Read(string cgroup, CgroupFiles? files = null)
    {
        var notes = new List<string>();
        var io = files ?? CgroupFiles.Direct;
        var cpu = Number(io, PathOf("cpuacct", cgroup), "cpuacct", "cpuacct.usage", "CPU time", notes);
        var peak = Number(io, PathOf("memory", cgroup), "memory", "memory.max_usage_in_bytes", "peak memory", notes);
        notes.Add(NoBlockIo);
        return new CgroupReading(cpu, peak, null, null, notes);
    }

    public bool ResetPeak(string cgroup, CgroupFiles? files = null) =>
        PathOf("memory", cgroup) is { } dir && (files ?? CgroupFiles.Direct).TryWrite(Path.Combine(dir, "memory.max_usage_in_bytes"), "0");

    private static long? Number(CgroupFiles io, string? dir, string controller, string file, string what, List<string> notes)
    {
        if (dir is null)
        {
            notes.Add($"{what} not measured: no {controller} controller is mounted");
            return null;
        }

        var path = Path.Combine(dir, file);
        var n = io.ReadNumber(path);
        if (n is null)
        {
            notes.Add($"{what} not measured: {path} cannot be read");
        }

        return n;
    }
}
