using System.Globalization;

namespace Pipelines.Containers;

/// <summary>
/// The cgroup parent our containers run under (Docker:CgroupParent, HostConfig.CgroupParent),
/// put in the kernel's idle scheduling class so that the machine's owner always comes first:
/// cpu.idle = 1 where the kernel has it (cgroup v1 and v2), else the lowest weight (cpu.shares = 2
/// on v1, cpu.weight = 1 on v2). Made once, before the first container, because the engine
/// would otherwise make the parent itself with the default weight.
/// </summary>
public sealed record IdleCgroup(string Parent, string Mode, bool Idle)
{
    /// <summary>Where the cgroup file systems are mounted; a test can point it elsewhere.</summary>
    public const string Root = "/sys/fs/cgroup";

    /// <summary>Whether this machine has the unified hierarchy only (cgroup v2).</summary>
    public static bool IsV2 => File.Exists(Path.Combine(Root, "cgroup.controllers"));

    /// <summary>The folder of <paramref name="parent"/> (or of a container under it) for one controller (v1), or in the one tree (v2).</summary>
    public static string PathOf(string controller, string parent) =>
        IsV2 ? Path.Combine(Root, parent.Trim('/')) : Path.Combine(Root, controller, parent.Trim('/'));

    /// <summary>
    /// Makes the parent and sets its class; never throws: where nothing can be set (a remote
    /// engine, no permission) the mode says why, and containers run at their cpu shares alone.
    /// </summary>
    public static IdleCgroup Prepare(string parent, string endpoint, bool idle = true)
    {
        if (string.IsNullOrWhiteSpace(parent))
        {
            return new(parent, "off: Docker:CgroupParent is empty; containers run at cpu shares alone", false);
        }

        if (!idle)
        {
            // A parent of its own, so that a when-idle worker on the same machine keeps its idle one.
            parent += "-always";
        }

        if (!endpoint.StartsWith("unix://", StringComparison.Ordinal))
        {
            return new(parent, $"unknown: the Docker engine at {endpoint} is on another machine, whose cgroups this worker cannot set; containers run under {parent} at cpu shares alone", false);
        }

        try
        {
            var v2 = IsV2;
            var cpu = PathOf("cpu", parent);
            Directory.CreateDirectory(cpu);
            if (v2)
            {
                // The parent's parent must hand the cpu controller down to it.
                TryWrite(Path.Combine(Path.GetDirectoryName(cpu)!, "cgroup.subtree_control"), "+cpu +memory +pids");
            }

            if (!idle)
            {
                TryWrite(Path.Combine(cpu, "cpu.idle"), "0");
                return new(parent, $"normal weight on {cpu} (Harvest:Policy always: the idle class is for when-idle)", false);
            }

            if (TryWrite(Path.Combine(cpu, "cpu.idle"), "1") && Read(Path.Combine(cpu, "cpu.idle")) == "1")
            {
                return new(parent, $"cpu.idle=1 on {cpu} (cgroup {(v2 ? "v2" : "v1")}): the kernel's idle class, the owner always first", true);
            }

            var (file, value) = v2 ? ("cpu.weight", "1") : ("cpu.shares", "2");
            if (TryWrite(Path.Combine(cpu, file), value))
            {
                return new(parent, $"{file}={value} on {cpu} (cgroup {(v2 ? "v2" : "v1")}, no cpu.idle in this kernel): the lowest weight", false);
            }

            return new(parent, $"off: neither cpu.idle nor {file} could be set on {cpu}; containers run at cpu shares alone", false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new(parent, $"off: the cgroup {parent} cannot be made ({e.Message}); containers run at cpu shares alone", false);
        }
    }

    /// <summary>
    /// Freezes or thaws a container's cgroup through the kernel's freezer (freezer.state on v1,
    /// cgroup.freeze on v2); false when the cgroup is not there or the state is already so.
    /// </summary>
    public static bool Freeze(string parent, string containerId, bool frozen)
    {
        if (ContainerDir("freezer", parent, containerId) is not { } dir)
        {
            return false;
        }

        var (file, value, now) = IsV2
            ? ("cgroup.freeze", frozen ? "1" : "0", Read(Path.Combine(dir, "cgroup.freeze")))
            : ("freezer.state", frozen ? "FROZEN" : "THAWED", Read(Path.Combine(dir, "freezer.state")));
        return now is not null && now != value && TryWrite(Path.Combine(dir, file), value);
    }

    /// <summary>A cgroup file's content, trimmed; null when it is not there.</summary>
    public static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>A cgroup file's first number; null when it is not there.</summary>
    public static long? ReadNumber(string path) =>
        Read(path) is { } text && long.TryParse(text.Split('\n')[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : null;

    /// <summary>The number of a "name value" line of a cgroup file such as cpu.stat or memory.stat; null when it has none.</summary>
    public static long? Field(string? text, string name)
    {
        foreach (var line in (text ?? "").Split('\n'))
        {
            if (line.Length > name.Length && line.StartsWith(name, StringComparison.Ordinal) && line[name.Length] == ' ')
            {
                return long.TryParse(line.AsSpan(name.Length + 1), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
            }
        }

        return null;
    }

    /// <summary>
    /// The folder of a container's own cgroup for one controller: under our parent (a warm
    /// container) or under its attempt's cgroup there (a one-shot container, CgroupMeter); null when it is in neither.
    /// </summary>
    public static string? ContainerDir(string controller, string parent, string containerId)
    {
        var direct = PathOf(controller, Path.Combine(parent, containerId));
        if (Directory.Exists(direct))
        {
            return direct;
        }

        try
        {
            return Directory.EnumerateDirectories(PathOf(controller, parent), CgroupMeter.AttemptPrefix + "*")
                .Select(d => Path.Combine(d, containerId))
                .FirstOrDefault(Directory.Exists);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    internal static bool TryWrite(string path, string value)
    {
        try
        {
            File.WriteAllText(path, value);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
