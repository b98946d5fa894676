namespace Pipelines.Containers.Cgroups;

/// <summary>
/// cgroup v2 (the unified hierarchy): one tree (at /sys/fs/cgroup on a machine that boots it,
/// or at /sys/fs/cgroup/unified beside v1 controllers), whose controllers a parent hands down
/// to its children through cgroup.subtree_control. The CPU class is cpu.idle (Linux 5.15+) or
/// cpu.weight, CPU time cpu.stat's usage_usec, memory memory.current and memory.peak (5.19+),
/// I/O io.stat, the freezer cgroup.freeze with cgroup.events' "frozen", and cgroup.kill (5.14+)
/// kills a whole cgroup, frozen or not. The core files (cgroup.*, cpu.stat's usage) are in every
/// cgroup; the others only where their controller is enabled.
/// </summary>
internal sealed class CgroupV2(string root) : ICgroupHierarchy
{
    /// <summary>The controllers our parent needs handed down: the CPU class, and the counters of memory, I/O and tasks.</summary>
    private static readonly string[] Wanted = ["cpu", "memory", "io", "pids"];

    /// <summary>Where the tree is mounted.</summary>
    public string Root => root;

    public string Name => "cgroup v2";

    public (string File, string Value) LowestWeight => ("cpu.weight", "1");

    public (string File, string Value) HighestWeight => ("cpu.weight", "10000");

    public IReadOnlyList<string> Folders(string cgroup) => [CgroupFile.Under(root, cgroup)];

    public string? CpuFolder(string cgroup) => CgroupFile.Under(root, cgroup);

    public bool Make(string cgroup)
    {
        var dir = CgroupFile.Under(root, cgroup);
        try
        {
            Directory.CreateDirectory(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }

        // Every ancestor hands down what it has of the controllers wanted, one at a time: a write
        // naming a controller the parent lacks would fail for all of them.
        var ancestor = root;
        foreach (var part in cgroup.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            var available = (CgroupFile.Read(Path.Combine(ancestor, "cgroup.controllers")) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            foreach (var controller in Wanted.Intersect(available, StringComparer.Ordinal))
            {
                CgroupFile.TryWrite(Path.Combine(ancestor, "cgroup.subtree_control"), "+" + controller);
            }

            ancestor = Path.Combine(ancestor, part);
        }

        return true;
    }

    public bool Enter(string cgroup, int pid) =>
        Make(cgroup) && CgroupFile.TryWrite(Path.Combine(CgroupFile.Under(root, cgroup), "cgroup.procs"), pid.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public bool Freeze(string cgroup, bool frozen)
    {
        var file = Path.Combine(CgroupFile.Under(root, cgroup), "cgroup.freeze");
        var value = frozen ? "1" : "0";
        return CgroupFile.Read(file) is { } now && (now == value || CgroupFile.TryWrite(file, value));
    }

    public FreezerState FreezerState(string cgroup)
    {
        var dir = CgroupFile.Under(root, cgroup);
        return CgroupFile.Read(Path.Combine(dir, "cgroup.freeze")) switch
        {
            "0" => Cgroups.FreezerState.Thawed,

            // Asked; "frozen 1" in cgroup.events once every process has stopped.
            "1" => CgroupFile.Field(CgroupFile.Read(Path.Combine(dir, "cgroup.events")), "frozen") == 1 ? Cgroups.FreezerState.Frozen : Cgroups.FreezerState.Freezing,
            _ => Cgroups.FreezerState.Gone,
        };
    }

    public bool Kill(string cgroup) => CgroupFile.TryWrite(Path.Combine(CgroupFile.Under(root, cgroup), "cgroup.kill"), "1");

    public long? CpuNanos(string cgroup) =>
        CgroupFile.Field(CgroupFile.Read(Path.Combine(CgroupFile.Under(root, cgroup), "cpu.stat")), "usage_usec") * 1000;

    public long? WorkingSet(string cgroup)
    {
        var dir = CgroupFile.Under(root, cgroup);
        if (CgroupFile.ReadNumber(Path.Combine(dir, "memory.current")) is not { } usage)
        {
            return null;
        }

        var inactive = CgroupFile.Field(CgroupFile.Read(Path.Combine(dir, "memory.stat")), "inactive_file") ?? 0;
        return Math.Max(0, usage - inactive);
    }

    public CgroupReading Read(string cgroup, CgroupFiles? files = null)
    {
        var notes = new List<string>();
        var io = files ?? CgroupFiles.Direct;
        var dir = CgroupFile.Under(root, cgroup);
        var cpuStat = io.Read(Path.Combine(dir, "cpu.stat"));
        var usec = CgroupFile.Field(cpuStat, "usage_usec");
        if (usec is null)
        {
            notes.Add($"CPU time not measured: {Path.Combine(dir, "cpu.stat")} {(cpuStat is null ? "cannot be read" : "has no usage_usec")}");
        }

        var peakFile = Path.Combine(dir, "memory.peak");
        var peak = io.ReadNumber(peakFile);
        if (peak is null)
        {
            notes.Add($"peak memory not measured: {peakFile} cannot be read (memory.peak needs Linux 5.19 or later and the memory controller enabled for our cgroup parent)");
        }

        var ioFile = Path.Combine(dir, "io.stat");
        long? read = null, written = null;
        if (io.Read(ioFile) is { } ioStat)
        {
            (read, written) = SumIoStat(ioStat);
        }
        else
        {
            notes.Add($"bytes read and written not measured: {ioFile} cannot be read (the io controller is not enabled for our cgroup parent)");
        }

        return new CgroupReading(usec * 1000, peak, read, written, notes);
    }

    public bool ResetPeak(string cgroup, CgroupFiles? files = null) => false;

    /// <summary>
    /// The rbytes and wbytes of an io.stat (a line per device: "8:0 rbytes=... wbytes=... ..."; no
    /// line is no I/O), each byte once: a device stacked on others (LVM and other device-mapper
    /// targets, md RAID) is charged for a bio and its disks again for the bios it sends down, so
    /// a device under another one of the lines (its slave, or a partition's disk, in
    /// <paramref name="sys"/>/dev/block/MAJ:MIN/slaves, followed down the stack) is not counted.
    /// </summary>
    public static (long Read, long Written) SumIoStat(string text, string sys = "/sys")
    {
        var devices = new List<(string Device, long Read, long Written)>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long read = 0, written = 0;
            foreach (var field in fields.Skip(1))
            {
                if (field.StartsWith("rbytes=", StringComparison.Ordinal) && long.TryParse(field.AsSpan(7), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var r))
                {
                    read = r;
                }
                else if (field.StartsWith("wbytes=", StringComparison.Ordinal) && long.TryParse(field.AsSpan(7), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var w))
                {
                    written = w;
                }
            }

            devices.Add((fields[0], read, written));
        }

        var under = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (device, _, _) in devices)
        {
            AddLower(Real(Path.Combine(sys, "dev", "block", device)), under, depth: 0);
        }

        var counted = devices.Where(d => !under.Contains(d.Device)).ToList();
        return (counted.Sum(d => d.Read), counted.Sum(d => d.Written));
    }

    /// <summary>
    /// The devices under a block device (its real folder in sysfs): each slave, the disk of a
    /// slave that is a partition (io.stat names disks; the partition's folder is in its disk's),
    /// and theirs in turn.
    /// </summary>
    private static void AddLower(string device, HashSet<string> under, int depth)
    {
        var slaves = Path.Combine(device, "slaves");
        if (depth > 8 || !Directory.Exists(slaves))
        {
            return;
        }

        try
        {
            foreach (var slave in Directory.EnumerateFileSystemEntries(slaves).Select(Real))
            {
                var lower = File.Exists(Path.Combine(slave, "partition")) && Path.GetDirectoryName(slave) is { } disk ? [slave, disk] : new[] { slave };
                foreach (var folder in lower)
                {
                    if (CgroupFile.Read(Path.Combine(folder, "dev")) is { } number && under.Add(number))
                    {
                        AddLower(folder, under, depth + 1);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A device that went meanwhile: what was read counts as it is.
        }
    }

    /// <summary>
    /// Where a sysfs link leads: its target joined to the link's own folder, which must be a real
    /// one (sysfs links are relative, and .NET joins ".." by the text, not by the folders).
    /// </summary>
    private static string Real(string path)
    {
        try
        {
            return new DirectoryInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return path;
        }
    }
}
