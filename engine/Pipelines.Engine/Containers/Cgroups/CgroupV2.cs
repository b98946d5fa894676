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
public sealed class CgroupV2(string root) : ICgroupHierarchy
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

    public CgroupReading Read(string cgroup)
    {
        var notes = new List<string>();
        var dir = CgroupFile.Under(root, cgroup);
        var cpuStat = CgroupFile.Read(Path.Combine(dir, "cpu.stat"));
        var usec = CgroupFile.Field(cpuStat, "usage_usec");
        if (usec is null)
        {
            notes.Add($"CPU time not measured: {Path.Combine(dir, "cpu.stat")} {(cpuStat is null ? "cannot be read" : "has no usage_usec")}");
        }

        var peakFile = Path.Combine(dir, "memory.peak");
        var peak = CgroupFile.ReadNumber(peakFile);
        if (peak is null)
        {
            notes.Add($"peak memory not measured: {peakFile} cannot be read (memory.peak needs Linux 5.19 or later and the memory controller enabled for our cgroup parent)");
        }

        var ioFile = Path.Combine(dir, "io.stat");
        long? read = null, written = null;
        if (CgroupFile.Read(ioFile) is { } io)
        {
            (read, written) = SumIoStat(io);
        }
        else
        {
            notes.Add($"bytes read and written not measured: {ioFile} cannot be read (the io controller is not enabled for our cgroup parent)");
        }

        return new CgroupReading(usec * 1000, peak, read, written, notes);
    }

    public bool ResetPeak(string cgroup) => false;

    /// <summary>The rbytes and wbytes of every device of an io.stat (a line per device: "8:0 rbytes=... wbytes=... ..."); no line is no I/O.</summary>
    public static (long Read, long Written) SumIoStat(string text)
    {
        long read = 0, written = 0;
        foreach (var field in text.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries))
        {
            if (field.StartsWith("rbytes=", StringComparison.Ordinal) && long.TryParse(field.AsSpan(7), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var r))
            {
                read += r;
            }
            else if (field.StartsWith("wbytes=", StringComparison.Ordinal) && long.TryParse(field.AsSpan(7), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var w))
            {
                written += w;
            }
        }

        return (read, written);
    }
}
