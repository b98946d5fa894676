using Pipelines.Model;
using Pipelines.RunStore;

namespace Pipelines.Runs;

/// <summary>
/// Why a run that has not ended may be stuck, for the dashboard: no worker connected while
/// tasks wait, or a task running far longer than the tasks of the same run that have ended.
/// One rule for the Runs page and the run page; nothing here changes the run.
/// </summary>
public static class StuckSigns
{
    /// <summary>A task counts as long when it runs this many times the median of its peers, and at least <see cref="MinimumLong"/>.</summary>
    public const int PeerFactor = 3;

    public static readonly TimeSpan MinimumLong = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The signs, as sentences: <paramref name="liveWorkers"/> is the number of live Hangfire
    /// servers; <paramref name="running"/> and <paramref name="ended"/> may be a sample of each.
    /// </summary>
    public static IReadOnlyList<string> Of(RunRecord run, TaskCounts counts, int liveWorkers, IReadOnlyList<TaskRecord> running, IReadOnlyList<TaskRecord> ended, DateTimeOffset now)
    {
        var signs = new List<string>();
        if (run.State.IsTerminal())
        {
            return signs;
        }

        if (liveWorkers == 0 && counts.Total > counts.Ended)
        {
            signs.Add($"no worker is connected: {counts.Total - counts.Ended} task(s) wait for one (start `pipelines worker`)");
        }

        var durations = ended.Where(t => t is { StartedAt: not null, FinishedAt: not null } && t.State == TaskState.Succeeded)
            .Select(t => t.FinishedAt!.Value - t.StartedAt!.Value).Order().ToList();
        if (durations.Count == 0)
        {
            return signs;
        }

        var median = durations[durations.Count / 2];
        var limit = TimeSpan.FromTicks(Math.Max(median.Ticks * PeerFactor, MinimumLong.Ticks));
        foreach (var t in running.Where(t => t.StartedAt is not null && now - t.StartedAt.Value > limit).Take(5))
        {
            signs.Add($"task {t.Index} has run for {Quantities.FormatDuration(now - t.StartedAt!.Value)} on {t.Worker}, over {PeerFactor}x the {Quantities.FormatDuration(median)} its ended peers took");
        }

        return signs;
    }
}
