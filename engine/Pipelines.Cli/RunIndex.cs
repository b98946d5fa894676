using System.Globalization;
using System.Text.Json;

namespace Pipelines.Cli;

/// <summary>
/// Where embedded runs are remembered on this machine (~/.local/state/pipelines/runs/, or
/// $PIPELINES_HOME/runs): a small file per run, named by its id, whose first line is its
/// output and whose second is its workflow. While the process that runs it lives, RUN.live
/// holds that process (pid and start time) and the run's latest counts, so that `status` and
/// `runs` in another shell see a run in flight; RUN.cancel is a `pipelines cancel` asking that
/// process to cancel it.
/// </summary>
internal static class RunIndex
{
    private const string LiveSuffix = ".live";
    private const string CancelSuffix = ".cancel";

    public static string Folder =>
        Path.Combine(Pipelines.Settings.PipelinesHome.Folder, "runs");

    /// <summary>An embedded run as the index knows it: its output, its workflow (older entries have none), when it was recorded.</summary>
    public sealed record Entry(string RunId, string OutputUri, string? Workflow, DateTimeOffset RecordedAt);

    /// <summary>What the process running a run says of it: its pid and start, and the latest counts and state.</summary>
    public sealed record Live(int Pid, long ProcessStart, string State, Pipelines.RunStore.TaskCounts? Counts, DateTimeOffset UpdatedAt);

    public static void Record(string runId, string outputUri, string workflow)
    {
        Directory.CreateDirectory(Folder);
        File.WriteAllText(Path.Combine(Folder, runId), outputUri + "\n" + workflow + "\n");
    }

    public static string? Find(string runId) => Get(runId)?.OutputUri;

    public static Entry? Get(string runId)
    {
        if (!IsRunId(runId))
        {
            return null;
        }

        var path = Path.Combine(Folder, runId);
        if (!File.Exists(path))
        {
            return null;
        }

        var lines = File.ReadAllLines(path);
        return new Entry(runId, lines.Length > 0 ? lines[0].Trim() : "", lines.Length > 1 && lines[1].Trim().Length > 0 ? lines[1].Trim() : null, File.GetLastWriteTimeUtc(path));
    }

    /// <summary>Every run recorded here.</summary>
    public static IEnumerable<Entry> All()
    {
        if (!Directory.Exists(Folder))
        {
            yield break;
        }

        foreach (var path in Directory.EnumerateFiles(Folder))
        {
            if (Get(Path.GetFileName(path)) is { } entry)
            {
                yield return entry;
            }
        }
    }

    /// <summary>Says that this process runs <paramref name="runId"/>, with its counts now (written whole, then renamed).</summary>
    public static void SetLive(string runId, string state, Pipelines.RunStore.TaskCounts counts)
    {
        var live = new Live(Environment.ProcessId, StartOf(Environment.ProcessId) ?? 0, state, counts, DateTimeOffset.UtcNow);
        var path = Path.Combine(Folder, runId + LiveSuffix);
        var temp = path + "." + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        File.WriteAllText(temp, JsonSerializer.Serialize(live, CliJson.Default.Live));
        File.Move(temp, path, overwrite: true);
    }

    public static void EndLive(string runId)
    {
        File.Delete(Path.Combine(Folder, runId + LiveSuffix));
        File.Delete(Path.Combine(Folder, runId + CancelSuffix));
    }

    /// <summary>The live marker of a run whose process still runs; null when there is none or its process is gone.</summary>
    public static Live? GetLive(string runId)
    {
        var path = Path.Combine(Folder, runId + LiveSuffix);
        Live? live;
        try
        {
            live = JsonSerializer.Deserialize(File.ReadAllText(path), CliJson.Default.Live);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or JsonException)
        {
            return null;
        }

        if (live is null)
        {
            return null;
        }

        // The same pid with another start time is another process: the run's own process is gone.
        return StartOf(live.Pid) is { } start && start == live.ProcessStart ? live : null;
    }

    /// <summary>
    /// When a process started, in clock ticks since boot (/proc/PID/stat, field 22): exact, where
    /// Process.StartTime is computed from the uptime and moves by milliseconds between calls.
    /// Null when there is no such process.
    /// </summary>
    private static long? StartOf(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return null;
        }

        // The name (field 2) is in parentheses and may hold spaces: the fields after it start at 3.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return fields.Length > 19 && long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var start) ? start : null;
    }

    /// <summary>Asks the process running <paramref name="runId"/> to cancel it for <paramref name="who"/>.</summary>
    public static void RequestCancel(string runId, string who) => File.WriteAllText(Path.Combine(Folder, runId + CancelSuffix), who);

    /// <summary>Whether a cancel asked for <paramref name="runId"/> is still waiting for its process to take it.</summary>
    public static bool CancelPending(string runId) => File.Exists(Path.Combine(Folder, runId + CancelSuffix));

    /// <summary>Who asked for a cancel of <paramref name="runId"/> that its process has not taken yet, or null.</summary>
    public static string? PendingCancel(string runId)
    {
        // Asked at every poll of a live run, where there is almost never a cancel: a look first, so
        // that the usual answer is not a thrown FileNotFoundException (about 100 a run of 2,000
        // one-file tasks, docs/benchmarks.md); the catch is for a cancel taken between the two.
        var path = Path.Combine(Folder, runId + CancelSuffix);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            var who = File.ReadAllText(path).Trim();
            return who.Length > 0 ? who : "a user";
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The process has taken the cancel (and published the run as it is after it).</summary>
    public static void ClearCancel(string runId) => File.Delete(Path.Combine(Folder, runId + CancelSuffix));

    private static bool IsRunId(string runId) => runId.Length > 0 && runId.All(c => char.IsAsciiLetterOrDigit(c) || c == '-');
}
