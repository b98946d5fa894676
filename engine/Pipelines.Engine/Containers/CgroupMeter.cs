using System.Collections.Concurrent;
using Pipelines.Containers.Cgroups;

namespace Pipelines.Containers;

/// <summary>
/// What a container used, from the kernel's counters of a cgroup (docs/provenance.md, "Resource
/// use"). A container's own cgroup is removed when it exits, so a one-shot container runs under a
/// cgroup of its own attempt (<see cref="NewAttempt"/>, under our parent: a folder under cgroupfs,
/// a slice under systemd), whose hierarchical counters keep what the container used after it is
/// gone; they are read once it has been removed, and the attempt's cgroup is removed after. A
/// warm container's own cgroup is read before and after each request. Which files hold the
/// counters is the machine's hierarchy's (<see cref="ICgroupHierarchy.Read"/>). A counter that
/// cannot be read is null with a note that says why, never a zero.
/// </summary>
internal static class CgroupMeter
{
    /// <summary>Attempt cgroups that could not be removed yet (their container's cgroup was still there): tried again after the next attempt.</summary>
    private static readonly ConcurrentDictionary<string, (IdleCgroup Idle, Attempt Attempt)> Unremoved = new(StringComparer.Ordinal);

    /// <summary>One attempt's cgroup: what the engine is told (HostConfig.CgroupParent), and where it is from the root of each hierarchy.</summary>
    public sealed record Attempt(string Engine, string Path);

    /// <summary>
    /// Why containers of this runtime cannot be measured, or null when they can: the counters are
    /// in the cgroup file system of the machine the engine runs on, under our cgroup parent.
    /// </summary>
    public static string? Unmeasurable(IdleCgroup idle, string endpoint) =>
        idle.Parent.Length == 0 ? "Docker:CgroupParent is empty, so containers have no cgroup of ours to read"
        : !endpoint.StartsWith("unix://", StringComparison.Ordinal) ? $"the Docker engine at {endpoint} is on another machine, whose cgroups this worker cannot read"

        // The engine makes each attempt's cgroup as root; a worker that could not remove them would leave one per attempt.
        : !Environment.IsPrivilegedProcess ? "this worker does not run as root, so it could not remove the cgroup the engine would make for each attempt"
        : null;

    /// <summary>
    /// <paramref name="result"/> with what the run used: the reading's columns, or only the wall
    /// time where nothing could be read (<paramref name="whyNot"/>), and every note for the log.
    /// </summary>
    public static ContainerResult Measured(ContainerResult result, CgroupReading? reading, string? whyNot, string? note = null) => reading is null
        ? result with { Resources = ResourceUse.None with { WallSeconds = result.Duration.TotalSeconds }, ResourceNotes = ["CPU time, peak memory and bytes read and written not measured: " + whyNot] }
        : result with { Resources = reading.Use(result.Duration), ResourceNotes = note is null ? reading.Notes : [.. reading.Notes, note] };

    /// <summary>A new cgroup for one attempt's container, under our parent: the engine makes it.</summary>
    public static Attempt NewAttempt(IdleCgroup idle)
    {
        var (engine, path) = idle.Driver.NewAttempt(idle.Parent);
        return new Attempt(engine, path);
    }

    /// <summary>The counters of a cgroup (a path from the root of each hierarchy) on this machine.</summary>
    public static CgroupReading Read(string cgroup, CgroupFiles? files = null) => CgroupMounts.Machine.Read(cgroup, files);

    /// <summary>Starts a new peak of a warm container's memory for one request; false where that cannot be done (<see cref="ICgroupHierarchy.ResetPeak"/>).</summary>
    public static bool ResetPeak(string cgroup, CgroupFiles? files = null) => CgroupMounts.Machine.ResetPeak(cgroup, files);

    /// <summary>
    /// Removes an attempt's cgroup, once its container's cgroup is gone; what cannot be removed
    /// yet is tried again after a later attempt. Null, or a note for the log.
    /// </summary>
    public static string? Remove(IdleCgroup idle, Attempt attempt)
    {
        Unremoved.TryAdd(attempt.Path, (idle, attempt));
        string? note = null;
        foreach (var (path, pending) in Unremoved)
        {
            if (RemoveNow(pending.Idle, pending.Attempt) is not { } left)
            {
                Unremoved.TryRemove(path, out _);
            }
            else if (path == attempt.Path)
            {
                note = $"the attempt's cgroup {left} could not be removed yet; it is tried again after the next attempt";
            }
        }

        return note;
    }

    /// <summary>
    /// Removes the attempt cgroups a killed worker left under our parent: those without a child
    /// (so no container of any worker is in them) and unchanged for a minute (the removal of a
    /// container's cgroup changes its parent, and a live attempt reads its own at once after that).
    /// </summary>
    public static int RemoveLeftovers(IdleCgroup idle, DateTime utcNow)
    {
        if (idle.Parent.Length == 0)
        {
            return 0;
        }

        var removed = 0;
        foreach (var parent in idle.Hierarchy.Folders(idle.Path))
        {
            try
            {
                foreach (var dir in Directory.Exists(parent) ? Directory.EnumerateDirectories(parent) : [])
                {
                    var name = Path.GetFileName(dir);
                    if (idle.Driver.IsAttempt(idle.Parent, name) && !Directory.EnumerateDirectories(dir).Any() && utcNow - Directory.GetLastWriteTimeUtc(dir) > TimeSpan.FromMinutes(1)
                        && RemoveNow(idle, new Attempt(idle.Driver.IsSystemd ? name : $"{idle.Path}/{name}", $"{idle.Path}/{name}"), dir) is null)
                    {
                        removed++;
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not ours to read, or gone meanwhile: the next pass looks again.
            }
        }

        return removed;
    }

    /// <summary>
    /// Removes an attempt's cgroup (from every hierarchy, or only <paramref name="only"/>): under
    /// systemd its slice is stopped, which removes it; else each folder is removed. Null when it is
    /// gone (or going), else the folder that is left.
    /// </summary>
    private static string? RemoveNow(IdleCgroup idle, Attempt attempt, string? only = null)
    {
        if (idle.Driver.IsSystemd && SystemdSlice.Stop(attempt.Engine) is null)
        {
            return null;
        }

        var left = (only is null ? idle.Hierarchy.Folders(attempt.Path) : [only]).Where(Directory.Exists).Where(d => !CgroupFile.TryRemove(d)).ToList();
        return left.Count == 0 ? null : left[0];
    }
}
