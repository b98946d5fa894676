using Pipelines.Containers.Cgroups;

namespace Pipelines.Containers;

/// <summary>
/// The cgroup parent our containers run under (Docker:CgroupParent, HostConfig.CgroupParent),
/// put in the kernel's idle scheduling class so that the machine's owner always comes first:
/// cpu.idle = 1 where the kernel has it (cgroup v1 and v2), else the lowest weight (cpu.shares = 2
/// on v1, cpu.weight = 1 on v2). Made once, before the first container, because the engine
/// would otherwise make the parent itself with the default weight. Its name and place follow the
/// engine's cgroup driver (<see cref="CgroupDriver"/>: /pipelines under cgroupfs, pipelines.slice
/// under systemd, whose class systemd keeps), its files the machine's hierarchy
/// (<see cref="ICgroupHierarchy"/>: v1, v2 or hybrid).
/// </summary>
public sealed record IdleCgroup(string Parent, string Mode, bool Idle)
{
    /// <summary>The machine's cgroup file systems, where every file of ours is read and written.</summary>
    public ICgroupHierarchy Hierarchy { get; init; } = CgroupMounts.Machine;

    /// <summary>How the engine names and places our containers' cgroups.</summary>
    public CgroupDriver Driver { get; init; } = CgroupDriver.Cgroupfs;

    /// <summary>Our parent's cgroup, from the root of each hierarchy (/pipelines, /pipelines.slice); empty when there is none.</summary>
    public string Path => Parent.Length == 0 ? "" : Driver.PathOf(Parent);

    /// <summary>What the engine is told (HostConfig.CgroupParent); null leaves the engine's own.</summary>
    public string? EngineParent => Parent.Length == 0 ? null : Driver.EngineParent(Parent);

    /// <summary>The cgroup of a container of ours that runs directly under our parent (a warm one).</summary>
    public string ContainerCgroup(string containerId) => Driver.ContainerCgroup(Path, containerId);

    /// <summary>
    /// The cgroup of a container of ours wherever it runs: under our parent (a warm one) or under
    /// its attempt's cgroup there (a one-shot one); null when it is in neither.
    /// </summary>
    public string? FindContainer(string containerId)
    {
        if (Parent.Length == 0)
        {
            return null;
        }

        var direct = ContainerCgroup(containerId);
        if (Hierarchy.Folders(direct).Any(Directory.Exists))
        {
            return direct;
        }

        foreach (var folder in Hierarchy.Folders(Path).Where(Directory.Exists))
        {
            try
            {
                foreach (var attempt in Directory.EnumerateDirectories(folder).Select(System.IO.Path.GetFileName).Where(n => Driver.IsAttempt(Parent, n!)))
                {
                    var candidate = Driver.ContainerCgroup($"{Path}/{attempt}", containerId);
                    if (Hierarchy.Folders(candidate).Any(Directory.Exists))
                    {
                        return candidate;
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Gone meanwhile, or not ours to read: the next folder may have it.
            }
        }

        return null;
    }

    /// <summary>
    /// Makes the parent and sets its class; never throws for the machine: where nothing can be set
    /// (a remote engine, no permission) the mode says why, and containers run at their cpu shares
    /// alone. A name the engine's driver would refuse is a clear error. <paramref name="driver"/>
    /// asks the engine (only when there is a parent to name).
    /// </summary>
    public static IdleCgroup Prepare(string parent, string endpoint, bool idle, Func<CgroupDriver> driver, ICgroupHierarchy? machine = null)
    {
        var hierarchy = machine ?? CgroupMounts.Machine;
        if (string.IsNullOrWhiteSpace(parent))
        {
            return new(parent, "off: Docker:CgroupParent is empty; containers run at cpu shares alone", false) { Hierarchy = hierarchy };
        }

        var engine = driver();

        // A parent of its own under policy always, so that a when-idle worker on the same machine keeps its idle one.
        var prepared = new IdleCgroup(engine.ParentName(parent, idle), "", false) { Hierarchy = hierarchy, Driver = engine };
        if (!endpoint.StartsWith("unix://", StringComparison.Ordinal))
        {
            return prepared with { Mode = $"unknown: the Docker engine at {endpoint} is on another machine, whose cgroups this worker cannot set; containers run under {prepared.Parent} at cpu shares alone ({engine.Said})" };
        }

        var where = $"{hierarchy.Name}, {engine.Said}";
        return engine.IsSystemd ? prepared.SetThroughSystemd(idle, where) : prepared.SetInFiles(idle, where);
    }

    /// <summary>Under cgroupfs the parent is ours: made, and its class written to its files.</summary>
    private IdleCgroup SetInFiles(bool idle, string where)
    {
        if (Hierarchy.CpuFolder(Path) is not { } cpu || !Hierarchy.Make(Path))
        {
            return this with { Mode = $"off: the cgroup {Path} cannot be made ({Hierarchy.Name}{(Hierarchy.CpuFolder(Path) is null ? ", no cpu controller mounted" : "")}); containers run at cpu shares alone" };
        }

        if (!idle)
        {
            CgroupFile.TryWrite(System.IO.Path.Combine(cpu, "cpu.idle"), "0");
            return this with { Mode = $"normal weight on {cpu} ({where}; Harvest:Policy always: the idle class is for when-idle)" };
        }

        if (CgroupFile.TryWrite(System.IO.Path.Combine(cpu, "cpu.idle"), "1") && CgroupFile.Read(System.IO.Path.Combine(cpu, "cpu.idle")) == "1")
        {
            return this with { Mode = $"cpu.idle=1 on {cpu} ({where}): the kernel's idle class, the owner always first", Idle = true };
        }

        var (file, value) = Hierarchy.LowestWeight;
        return CgroupFile.TryWrite(System.IO.Path.Combine(cpu, file), value)
            ? this with { Mode = $"{file}={value} on {cpu} ({where}; no cpu.idle in this kernel): the lowest weight" }
            : this with { Mode = $"off: neither cpu.idle nor {file} could be set on {cpu}; containers run at cpu shares alone" };
    }

    /// <summary>
    /// Under systemd the slice is systemd's, which writes its cpu.idle and weight itself: the class
    /// is set on the unit (CPUWeight=idle, systemd 252 and later; the lowest weight before), and
    /// read back from the slice's files once it is there (systemd makes it with the first container).
    /// </summary>
    private IdleCgroup SetThroughSystemd(bool idle, string where)
    {
        var folder = Hierarchy.CpuFolder(Path);
        var idleFile = folder is null ? null : System.IO.Path.Combine(folder, "cpu.idle");
        if (!idle)
        {
            return this with { Mode = $"normal weight in {Parent} ({where}; Harvest:Policy always: the idle class is for when-idle)" };
        }

        if (idleFile is not null && CgroupFile.Read(idleFile) == "1")
        {
            return this with { Mode = $"cpu.idle=1 on {folder} ({where}; CPUWeight=idle of {Parent}): the kernel's idle class, the owner always first", Idle = true };
        }

        var refused = SystemdSlice.SetProperty(Parent, "CPUWeight=idle");
        if (refused is null)
        {
            var now = idleFile is null ? null : CgroupFile.Read(idleFile);
            return this with { Mode = $"{(now == "1" ? $"cpu.idle=1 on {folder}" : $"CPUWeight=idle on {Parent}, set through systemd")} ({where}): the kernel's idle class, the owner always first", Idle = true };
        }

        // systemd before 252 has no CPUWeight=idle.
        return SystemdSlice.SetProperty(Parent, "CPUWeight=1") is null
            ? this with { Mode = $"CPUWeight=1 on {Parent}, set through systemd ({where}; this systemd has no CPUWeight=idle): the lowest weight" }
            : this with { Mode = $"off: systemd did not take CPUWeight=idle for {Parent} ({refused}); put CPUWeight=idle in the slice's unit file; containers run at cpu shares alone" };
    }
}
