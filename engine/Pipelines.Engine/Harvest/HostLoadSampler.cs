using System.Globalization;
using Pipelines.Containers.Cgroups;

namespace Pipelines.Harvest;

/// <summary>
/// The owner's load from the kernel's own counters: the host's busy CPU time from /proc/stat and
/// its memory from /proc/meminfo, less what the containers under our cgroup parent used
/// (the machine's hierarchy's counters, <see cref="ICgroupHierarchy.CpuNanos"/> and
/// <see cref="ICgroupHierarchy.WorkingSet"/>: cpuacct.usage and memory.usage_in_bytes less inactive
/// file pages on cgroup v1; cpu.stat and memory.current on v2). Four small files per sample, no
/// Docker API call: a sample costs well under a millisecond of CPU (HarvestTests measures it).
/// Where the owner's work runs in a cgroup of its own (a systemd slice such as
/// system.slice/nginx.service: Harvest:OwnerCgroup), the owner is that cgroup alone, and other
/// load on the machine is nobody's. Cgroups are paths from the root of each hierarchy.
/// </summary>
internal sealed class HostLoadSampler(string cgroupParent, TimeProvider time, string? ownerCgroup = null, ICgroupHierarchy? hierarchy = null) : IOwnerLoad
{
    private readonly Lock _lock = new();
    private readonly ICgroupHierarchy _cgroups = hierarchy ?? CgroupMounts.Machine;
    private long _lastBusy;
    private long _lastTotal;
    private long _lastOursNs;
    private long _lastOwnerNs;

    public OwnerSample Sample()
    {
        var (busy, total, cores) = ReadProcStat();
        var oursNs = CpuNs(cgroupParent);
        var ownerNs = ownerCgroup is { Length: > 0 } owner ? CpuNs(owner) : 0;
        var (memTotal, memAvailable) = ReadMeminfo();
        var oursMemory = Memory(cgroupParent);
        lock (_lock)
        {
            var dTotal = total - _lastTotal;
            var dBusy = busy - _lastBusy;
            var dOurs = Math.Max(0, oursNs - _lastOursNs);
            var dOwner = Math.Max(0, ownerNs - _lastOwnerNs);
            (_lastBusy, _lastTotal, _lastOursNs, _lastOwnerNs) = (busy, total, oursNs, ownerNs);

            // /proc/stat counts in USER_HZ (100 per second per core on Linux): total over all
            // cores divided by cores is the wall time of the interval.
            var seconds = dTotal > 0 && cores > 0 ? dTotal / 100.0 / cores : 0;
            var hostCpu = seconds > 0 ? dBusy / 100.0 / seconds : 0;
            var oursCpu = seconds > 0 ? dOurs / 1e9 / seconds : 0;
            var sample = new OwnerSample(time.GetUtcNow(), cores, hostCpu, Math.Min(oursCpu, hostCpu), memTotal, memAvailable, oursMemory);
            return ownerCgroup is not { Length: > 0 } ? sample : sample with
            {
                OwnerCgroupCpu = seconds > 0 ? dOwner / 1e9 / seconds : 0,
                OwnerCgroupMemory = Memory(ownerCgroup),
            };
        }
    }

    private static (long Busy, long Total, int Cores) ReadProcStat()
    {
        long busy = 0, total = 0;
        var cores = 0;
        foreach (var line in File.ReadLines("/proc/stat"))
        {
            if (line.StartsWith("cpu ", StringComparison.Ordinal))
            {
                // user nice system idle iowait irq softirq steal (guest time is within user)
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                for (var i = 1; i < Math.Min(f.Length, 9); i++)
                {
                    var v = long.Parse(f[i], CultureInfo.InvariantCulture);
                    total += v;
                    if (i is not 4 and not 5)
                    {
                        busy += v;
                    }
                }
            }
            else if (line.StartsWith("cpu", StringComparison.Ordinal))
            {
                cores++;
            }
            else
            {
                break;
            }
        }

        return (busy, total, cores);
    }

    private static (long Total, long Available) ReadMeminfo()
    {
        long total = 0, available = 0;
        foreach (var line in File.ReadLines("/proc/meminfo"))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                total = Kb(line);
            }
            else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
            {
                available = Kb(line);
                break;
            }
        }

        return (total, available);

        static long Kb(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>A cgroup's CPU time so far, in nanoseconds.</summary>
    private long CpuNs(string cgroup) => _cgroups.CpuNanos(cgroup) ?? 0;

    /// <summary>A cgroup's working set, as `docker stats` counts it: usage less inactive file pages.</summary>
    private long Memory(string cgroup) => _cgroups.WorkingSet(cgroup) ?? 0;
}
