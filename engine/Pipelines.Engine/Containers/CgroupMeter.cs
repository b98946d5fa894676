using System.Collections.Concurrent;
using System.Globalization;

namespace Pipelines.Containers;

/// <summary>
/// What a container used, from the kernel's counters of a cgroup (docs/provenance.md, "Resource
/// use"). A container's own cgroup is removed when it exits, so a one-shot container runs under a
/// cgroup of its own attempt (<see cref="NewAttempt"/>, under our parent), whose hierarchical
/// counters keep what the container used after it is gone; they are read once it has been
/// removed, and the attempt's cgroup is removed after. A warm container's own cgroup is read before
/// and after each request. cgroup v1: cpuacct.usage and memory.max_usage_in_bytes (no bytes
/// read or written: <see cref="NoBlockIoOnV1"/>); v2: cpu.stat usage_usec, memory.peak and io.stat
/// rbytes/wbytes. A counter that cannot be read is null with a note that says why, never a zero.
/// </summary>
internal static class CgroupMeter
{
    /// <summary>The prefix of attempt cgroups under our parent.</summary>
    public const string AttemptPrefix = "attempt-";

    /// <summary>Attempt cgroups that could not be removed yet (their container's cgroup was still there): tried again after the next attempt.</summary>
    private static readonly ConcurrentDictionary<string, byte> Unremoved = new(StringComparer.Ordinal);

    /// <summary>One reading of a cgroup's counters; null where a counter could not be read, with <see cref="Notes"/> saying why.</summary>
    public sealed record Reading(long? CpuNanos, long? PeakMemoryBytes, long? ReadBytes, long? WrittenBytes, IReadOnlyList<string> Notes)
    {
        /// <summary>The columns of a provenance row, with the wall time the runtime measured around the container's run.</summary>
        public ResourceUse Use(TimeSpan wall) => new(CpuNanos / 1e9, PeakMemoryBytes, ReadBytes, WrittenBytes, wall.TotalSeconds);

        /// <summary>
        /// What was used since <paramref name="before"/> (a warm request): the counters' growth,
        /// and the peak as it is now (after <see cref="ResetPeak"/>; null when it could not be reset).
        /// </summary>
        public Reading Since(Reading before, bool peakWasReset) => new(
            CpuNanos - before.CpuNanos,
            peakWasReset ? PeakMemoryBytes : null,
            ReadBytes - before.ReadBytes,
            WrittenBytes - before.WrittenBytes,
            [.. before.Notes.Union(Notes, StringComparer.Ordinal), .. peakWasReset || PeakMemoryBytes is null ? [] : new[] { "peak memory not measured: the warm container's peak could not be started again for this request (memory.max_usage_in_bytes cannot be written, or cgroup v2, whose memory.peak starts again for one open file only)" }]);
    }

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
    public static ContainerResult Measured(ContainerResult result, Reading? reading, string? whyNot, string? note = null) => reading is null
        ? result with { Resources = ResourceUse.None with { WallSeconds = result.Duration.TotalSeconds }, ResourceNotes = ["CPU time, peak memory and bytes read and written not measured: " + whyNot] }
        : result with { Resources = reading.Use(result.Duration), ResourceNotes = note is null ? reading.Notes : [.. reading.Notes, note] };

    /// <summary>A new cgroup (a path from the root of each hierarchy) for one attempt's container, under our parent: the engine makes it.</summary>
    public static string NewAttempt(IdleCgroup idle) => $"/{idle.Parent.Trim('/')}/{AttemptPrefix}{Guid.NewGuid():N}";

    /// <summary>The counters of a cgroup (a path from the root of each hierarchy).</summary>
    public static Reading Read(string cgroup)
    {
        var notes = new List<string>();
        return IdleCgroup.IsV2 ? ReadV2(cgroup, notes) : ReadV1(cgroup, notes);
    }

    /// <summary>
    /// Starts a new peak of a warm container's memory for one request (v1: writing 0 to
    /// memory.max_usage_in_bytes sets it to the usage now); false where that cannot be done (v2
    /// resets memory.peak only for one open file, so a warm request's peak is not measured there).
    /// </summary>
    public static bool ResetPeak(string cgroup) =>
        !IdleCgroup.IsV2 && IdleCgroup.TryWrite(Path.Combine(IdleCgroup.PathOf("memory", cgroup), "memory.max_usage_in_bytes"), "0");

    /// <summary>
    /// Removes an attempt's cgroup from every hierarchy, once its container's cgroup is gone;
    /// what cannot be removed yet is tried again after a later attempt. Null, or a note for the log.
    /// </summary>
    public static string? Remove(string cgroup)
    {
        Unremoved.TryAdd(cgroup, 0);
        string? note = null;
        foreach (var pending in Unremoved.Keys)
        {
            var left = Dirs(pending).Where(Directory.Exists).Where(d => !TryRemove(d)).ToList();
            if (left.Count == 0)
            {
                Unremoved.TryRemove(pending, out _);
            }
            else if (pending == cgroup)
            {
                note = $"the attempt's cgroup {left[0]} could not be removed yet; it is tried again after the next attempt";
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
        foreach (var hierarchy in IdleCgroup.IsV2 ? [IdleCgroup.Root] : Directory.EnumerateDirectories(IdleCgroup.Root))
        {
            var parent = Path.Combine(hierarchy, idle.Parent.Trim('/'));
            try
            {
                foreach (var dir in Directory.Exists(parent) ? Directory.EnumerateDirectories(parent, AttemptPrefix + "*") : [])
                {
                    if (!Directory.EnumerateDirectories(dir).Any() && utcNow - Directory.GetLastWriteTimeUtc(dir) > TimeSpan.FromMinutes(1) && TryRemove(dir))
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

    /// <summary>The folders of a cgroup in every hierarchy (v1: one per mounted controller; v2: the one tree).</summary>
    private static IEnumerable<string> Dirs(string cgroup)
    {
        if (IdleCgroup.IsV2)
        {
            return [Path.Combine(IdleCgroup.Root, cgroup.Trim('/'))];
        }

        try
        {
            return Directory.EnumerateDirectories(IdleCgroup.Root).Select(h => Path.Combine(h, cgroup.Trim('/'))).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static bool TryRemove(string dir)
    {
        try
        {
            // rmdir: a cgroup's folder holds only the kernel's files, and goes once it has no child and no process.
            Directory.Delete(dir, recursive: false);
            return true;
        }
        catch (DirectoryNotFoundException)
        {
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static Reading ReadV1(string cgroup, List<string> notes)
    {
        var cpu = Number(Path.Combine(IdleCgroup.PathOf("cpuacct", cgroup), "cpuacct.usage"), "CPU time", notes);
        var peak = Number(Path.Combine(IdleCgroup.PathOf("memory", cgroup), "memory.max_usage_in_bytes"), "peak memory", notes);
        notes.Add(NoBlockIoOnV1);
        return new Reading(cpu, peak, null, null, notes);
    }

    private static Reading ReadV2(string cgroup, List<string> notes)
    {
        var dir = IdleCgroup.PathOf("", cgroup);
        var cpuStat = IdleCgroup.Read(Path.Combine(dir, "cpu.stat"));
        var usec = IdleCgroup.Field(cpuStat, "usage_usec");
        if (usec is null)
        {
            notes.Add($"CPU time not measured: {Path.Combine(dir, "cpu.stat")} {(cpuStat is null ? "cannot be read" : "has no usage_usec")}");
        }

        var peak = Number(Path.Combine(dir, "memory.peak"), "peak memory (memory.peak needs Linux 5.19 or later)", notes);
        var (read, written) = IoV2(dir, notes);
        return new Reading(usec * 1000, peak, read, written, notes);
    }

    /// <summary>
    /// cgroup v1 has no count of a container's file I/O to trust: its blkio counts only bios that
    /// reach a block device in the container's cgroup, buffered writes are written back by the
    /// kernel outside it, and recent kernels count nothing on a device without a blk-throttle rule
    /// (here even direct writes under a rule counted 0). So the columns are null, and the log says why.
    /// </summary>
    internal const string NoBlockIoOnV1 = "bytes read and written not measured: cgroup v1 keeps no reliable count of a container's I/O (blkio misses buffered writes, which the kernel writes back outside the container's cgroup, and counts nothing on recent kernels without a blk-throttle rule); cgroup v2 counts them (io.stat)";

    /// <summary>Bytes read and written (v2 io.stat, a line per device: "8:0 rbytes=... wbytes=... ..."); no line is no I/O.</summary>
    private static (long? Read, long? Written) IoV2(string dir, List<string> notes)
    {
        var path = Path.Combine(dir, "io.stat");
        var text = IdleCgroup.Read(path);
        if (text is null)
        {
            notes.Add($"bytes read and written not measured: {path} cannot be read (the io controller is not enabled for our cgroup parent)");
            return (null, null);
        }

        return SumIoStat(text);
    }

    /// <summary>The rbytes and wbytes of every device of a v2 io.stat.</summary>
    internal static (long Read, long Written) SumIoStat(string text)
    {
        long read = 0, written = 0;
        foreach (var field in text.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries))
        {
            if (field.StartsWith("rbytes=", StringComparison.Ordinal) && long.TryParse(field.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out var r))
            {
                read += r;
            }
            else if (field.StartsWith("wbytes=", StringComparison.Ordinal) && long.TryParse(field.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out var w))
            {
                written += w;
            }
        }

        return (read, written);
    }

    private static long? Number(string path, string what, List<string> notes)
    {
        var n = IdleCgroup.ReadNumber(path);
        if (n is null)
        {
            notes.Add($"{what} not measured: {path} cannot be read");
        }

        return n;
    }
}
