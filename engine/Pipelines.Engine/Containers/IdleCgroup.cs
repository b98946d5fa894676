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
    /// is set on the unit (CPUWeight=idle, systemd 252 and later; the lowest weight before). Where
    /// systemd cannot be reached (a worker in a container has neither systemctl nor the host's
    /// bus) the class is the slice unit's own (deploy/systemd/pipelines.slice): read from the
    /// slice's files, and pending until systemd makes the slice with the first container
    /// (<see cref="Reread"/>).
    /// </summary>
    private IdleCgroup SetThroughSystemd(bool idle, string where)
    {
        var folder = Hierarchy.CpuFolder(Path);
        if (!idle)
        {
            return this with { Mode = $"normal weight in {Parent} ({where}; Harvest:Policy always: the idle class is for when-idle)" };
        }

        if (folder is not null && CgroupFile.Read(System.IO.Path.Combine(folder, "cpu.idle")) == "1")
        {
            return this with { Mode = $"cpu.idle=1 on {folder} ({where}; CPUWeight=idle of {Parent}): the kernel's idle class, the owner always first", Idle = true };
        }

        var refused = SystemdSlice.SetProperty(Parent, "CPUWeight=idle");
        if (refused is null)
        {
            var now = folder is null ? null : CgroupFile.Read(System.IO.Path.Combine(folder, "cpu.idle"));
            return this with { Mode = $"{(now == "1" ? $"cpu.idle=1 on {folder}" : $"CPUWeight=idle on {Parent}, set through systemd")} ({where}): the kernel's idle class, the owner always first", Idle = true };
        }

        // systemd before 252 has no CPUWeight=idle; without systemctl there is nothing more to ask.
        if (!refused.StartsWith(SystemdSlice.CannotRun, StringComparison.Ordinal) && SystemdSlice.SetProperty(Parent, "CPUWeight=1") is null)
        {
            return this with { Mode = $"CPUWeight=1 on {Parent}, set through systemd ({where}; this systemd has no CPUWeight=idle): the lowest weight" };
        }

        return (this with { NotSetBecause = refused }).ReadSlice();
    }

    /// <summary>
    /// The class again where it comes from the slice's files (systemd could not be asked): read
    /// once systemd has made the slice (after the first container start, and at later admissions
    /// while it is pending), and again later, so that a slice unit installed while the worker runs
    /// is seen; this one where the worker set the class itself.
    /// </summary>
    public IdleCgroup Reread() => NotSetBecause is null ? this : ReadSlice();

    /// <summary>Whether the class cannot be known yet: systemd could not be asked, and the slice it makes with the first container is not there yet.</summary>
    public bool Pending => Mode.StartsWith(PendingMode, StringComparison.Ordinal);

    /// <summary>Whether a mode says our containers run without a class set for them (off, or unknown on a remote engine): a when-idle worker says so as a warning.</summary>
    public static bool RunsWithoutClass(string mode) => mode.StartsWith("off:", StringComparison.Ordinal) || mode.StartsWith("unknown:", StringComparison.Ordinal);

    /// <summary>
    /// A mode in a word, for the metrics (pipelines.harvest.idle.class): idle (cpu.idle=1 or
    /// CPUWeight=idle), lowest_weight, normal (policy always), pending, off or unknown.
    /// </summary>
    public static string ClassOf(string mode) => mode switch
    {
        _ when mode.StartsWith("cpu.idle=1", StringComparison.Ordinal) || mode.StartsWith("CPUWeight=idle", StringComparison.Ordinal) => "idle",
        _ when mode.StartsWith("normal weight", StringComparison.Ordinal) => "normal",
        _ when mode.StartsWith(PendingMode, StringComparison.Ordinal) => "pending",
        _ when mode.StartsWith("off:", StringComparison.Ordinal) => "off",
        _ when mode.StartsWith("unknown:", StringComparison.Ordinal) => "unknown",
        _ => "lowest_weight",
    };

    private const string PendingMode = "pending:";

    /// <summary>Why systemd could not set the slice's class (what systemctl said), where it could not.</summary>
    private string? NotSetBecause { get; init; }

    /// <summary>
    /// The slice's class as its unit gave it, read from its cgroup's files: cpu.idle=1 (the
    /// unit says CPUWeight=idle), the lowest weight (CPUWeight=1), or normal weight, which a
    /// when-idle worker must not run at silently: the mode names the fix.
    /// </summary>
    private IdleCgroup ReadSlice()
    {
        var where = $"{Hierarchy.Name}, {Driver.Said}; systemd could not be asked: {NotSetBecause}";
        if (Hierarchy.CpuFolder(Path) is not { } folder)
        {
            return this with { Mode = $"off: no cpu controller is mounted where {Parent} would be ({where}); containers run at cpu shares alone" };
        }

        if (!Directory.Exists(folder))
        {
            return this with { Mode = $"{PendingMode} {Parent} does not exist yet; systemd makes it with the first container, and its class is read from its files then ({where})" };
        }

        if (CgroupFile.Read(System.IO.Path.Combine(folder, "cpu.idle")) == "1")
        {
            return this with { Mode = $"cpu.idle=1 on {folder} (read from the slice's files: its unit says CPUWeight=idle; {where}): the kernel's idle class, the owner always first", Idle = true };
        }

        var (file, value) = Hierarchy.LowestWeight;
        if (CgroupFile.Read(System.IO.Path.Combine(folder, file)) == value)
        {
            return this with { Mode = $"{file}={value} on {folder} (read from the slice's files; {where}): the lowest weight" };
        }

        return this with { Mode = $"off: {Parent} runs at normal weight ({folder} has no cpu.idle=1; {where}); {InstallSlice}" };
    }

    /// <summary>The fix for a slice at normal weight, on the host whose systemd owns it (README, "Deployment").</summary>
    private string InstallSlice => Parent == "pipelines.slice"
        ? "install deploy/systemd/pipelines.slice on the host: sudo install -m 644 deploy/systemd/pipelines.slice /etc/systemd/system/ && sudo systemctl daemon-reload"
        : $"install deploy/systemd/pipelines.slice on the host as /etc/systemd/system/{Parent}, then sudo systemctl daemon-reload";
}
