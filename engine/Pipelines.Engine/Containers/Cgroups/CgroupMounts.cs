namespace Pipelines.Containers.Cgroups;

/// <summary>
/// Which cgroup file systems a machine has, from its mount table (/proc/self/mountinfo): v2
/// alone (the unified hierarchy: Debian 12, Ubuntu 22.04 and later, RHEL 9), v1 alone, or
/// hybrid (v1 controllers with a v2 tree beside them, as systemd's "hybrid" mode mounts them).
/// </summary>
public static class CgroupMounts
{
    private static readonly HashSet<string> V1Controllers = new(["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc"], StringComparer.Ordinal);

    private static readonly Lazy<ICgroupHierarchy> ThisMachine = new(() => Detect(ReadMountInfo()));

    /// <summary>This machine's cgroup file systems, read once.</summary>
    public static ICgroupHierarchy Machine => ThisMachine.Value;

    /// <summary>
    /// The hierarchy a mount table describes. A line of mountinfo (proc(5)): "36 35 0:29 / /sys/fs/cgroup/cpu
    /// rw,relatime shared:9 - cgroup cgroup rw,cpu": the mount point is the fifth field, then
    /// after " - " the file system type and its super options, which name a v1 hierarchy's controllers.
    /// </summary>
    public static ICgroupHierarchy Detect(IEnumerable<string> mountInfo)
    {
        var v1 = new Dictionary<string, string>(StringComparer.Ordinal);
        string? v2 = null;
        foreach (var line in mountInfo)
        {
            var separator = line.IndexOf(" - ", StringComparison.Ordinal);
            if (separator < 0)
            {
                continue;
            }

            var fields = line[..separator].Split(' ');
            var tail = line[(separator + 3)..].Split(' ');
            if (fields.Length < 5 || tail.Length < 3)
            {
                continue;
            }

            var mountPoint = Unescape(fields[4]);
            if (tail[0] == "cgroup2")
            {
                // The first one mounted; a second mount of the same tree elsewhere changes nothing.
                v2 ??= mountPoint;
            }
            else if (tail[0] == "cgroup")
            {
                // The options name the controllers (and a named hierarchy, name=systemd), among others (rw, xattr, release_agent=...).
                foreach (var option in tail[2].Split(','))
                {
                    if (V1Controllers.Contains(option) || option.StartsWith("name=", StringComparison.Ordinal))
                    {
                        v1.TryAdd(option, mountPoint);
                    }
                }
            }
        }

        var controllers = v1.Keys.Any(k => !k.StartsWith("name=", StringComparison.Ordinal));
        return (controllers, v2) switch
        {
            (true, { } tree) => new CgroupHybrid(new CgroupV1(v1), new CgroupV2(tree)),
            (true, null) => new CgroupV1(v1),
            (false, { } tree) => new CgroupV2(tree),

            // No cgroup file system at all (a container without /sys/fs/cgroup): every file reads null.
            _ => new CgroupV1(new Dictionary<string, string>(StringComparer.Ordinal)),
        };
    }

    private static string[] ReadMountInfo()
    {
        try
        {
            return File.ReadAllLines("/proc/self/mountinfo");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>mountinfo writes a space, a tab, a newline and a backslash in a path as octal escapes (\040, \011, \012, \134).</summary>
    private static string Unescape(string field) => field
        .Replace("\\040", " ", StringComparison.Ordinal)
        .Replace("\\011", "\t", StringComparison.Ordinal)
        .Replace("\\012", "\n", StringComparison.Ordinal)
        .Replace("\\134", "\\", StringComparison.Ordinal);
}
