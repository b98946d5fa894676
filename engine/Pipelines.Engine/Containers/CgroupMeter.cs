using System.Collections.Concurrent;
using System.Globalization;

namespace Pipelines.Containers;

/// <summary>
/// What a container used, from the kernel's counters of a cgroup (docs/provenance.md, "Resource
/// use"). A container's own cgroup is removed when it exits, so a one-shot container runs under a
/// cgroup of its own attempt (<see cref="NewAttempt"/>, under our parent), whose hierarchical
/// counters keep what the container used after it is gone; they are read once it has been
/// removed, and the attempt's cgroup is removed after. A warm container's own cgroup is read before
/// and after each request. cgroup v1: cpuacct.usage, memory.max_usage_in_bytes and
/// blkio.throttle.io_service_bytes_recursive; v2: cpu.stat usage_usec, memory.peak and io.stat
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
        var (read, written) = BlkioV1(cgroup, notes);
        return new Reading(cpu, peak, read, written, notes);
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
    /// Bytes read from and written to block devices (v1 blkio). On recent kernels v1 counts block
    /// I/O only while blk-throttle is active on a device: a file with no device line here and at
    /// the root of the hierarchy means nothing is counted at all, which is said, not read as zero.
    /// </summary>
    private static (long? Read, long? Written) BlkioV1(string cgroup, List<string> notes)
    {
        const string file = "blkio.throttle.io_service_bytes_recursive";
        var path = Path.Combine(IdleCgroup.PathOf("blkio", cgroup), file);
        var text = IdleCgroup.Read(path);
        if (text is null)
        {
            notes.Add($"bytes read and written not measured: {path} cannot be read");
            return (null, null);
        }

        var (read, written, devices) = SumV1(text);
        if (devices == 0 && SumV1(IdleCgroup.Read(Path.Combine(IdleCgroup.PathOf("blkio", "/"), file)) ?? "").Devices == 0)
        {
            notes.Add($"bytes read and written not measured: this kernel counts no cgroup v1 block I/O ({file} is empty here and at the root: blk-throttle is not active on any device)");
            return (null, null);
        }

        return (read, written);
    }

    private static (long Read, long Written, int Devices) SumV1(string text)
    {
        long read = 0, written = 0;
        var devices = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // "8:0 Read 4096", "8:0 Write 0", ..., "Total 4096"
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 3 || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                continue;
            }

            devices.Add(parts[0]);
            if (parts[1] == "Read")
            {
                read += n;
            }
            else if (parts[1] == "Write")
            {
                written += n;
            }
        }

        return (read, written, devices.Count);
    }

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
