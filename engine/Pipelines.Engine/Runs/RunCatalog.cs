using System.Globalization;
using Pipelines.Model;
using Pipelines.RunStore;

namespace Pipelines.Runs;

/// <summary>
/// The run verbs that the CLI (`pipelines runs`, `cancel`, `status`) and the server's /api/runs
/// share, over the run store: one home for how runs are listed and filtered, how a filter is
/// read from text, how a run is cancelled and what each outcome means, and how a run's held
/// tasks are said. Neither side keeps a rule of its own.
/// </summary>
public static class RunCatalog
{
    /// <summary>The most runs (or tasks) one page holds.</summary>
    public const int MaxLimit = 500;

    /// <summary>A run as a listing shows it: the record and its tasks counted by state (the held ones by reason).</summary>
    public sealed record Listed(RunRecord Run, TaskCounts Counts);

    /// <summary>How a cancel went: asked (the run stops), no such run, or the run had already ended.</summary>
    public enum CancelOutcome
    {
        Requested,
        NotFound,
        Ended,
    }

    /// <summary>A cancel's outcome with the run and its counts as they are after it (null when there is no such run).</summary>
    public sealed record Cancelled(CancelOutcome Outcome, RunRecord? Run, TaskCounts? Counts);

    /// <summary>Runs matching <paramref name="query"/>, newest first, one page, each with its counts.</summary>
    public static async Task<Page<Listed>> ListAsync(IRunStore store, RunQuery query, CancellationToken ct)
    {
        var page = await store.QueryRunsAsync(query, ct).ConfigureAwait(false);
        var listed = new List<Listed>(page.Items.Count);
        foreach (var run in page.Items)
        {
            listed.Add(new Listed(run, await store.CountTasksAsync(run.RunId, ct).ConfigureAwait(false)));
        }

        return new Page<Listed>(listed, page.Total);
    }

    /// <summary>
    /// Cancels a run on behalf of <paramref name="who"/>: queued tasks never start, workers stop
    /// the running containers, and the gather ends the run cancelled. The first stop reason wins,
    /// so a second cancel (or an on_error stop before it) changes nothing but is still Requested.
    /// </summary>
    public static async Task<Cancelled> CancelAsync(IRunStore store, string runId, string who, CancellationToken ct)
    {
        var run = await store.GetRunAsync(runId, ct).ConfigureAwait(false);
        if (run is null)
        {
            return new Cancelled(CancelOutcome.NotFound, null, null);
        }

        if (run.State.IsTerminal())
        {
            return new Cancelled(CancelOutcome.Ended, run, await store.CountTasksAsync(runId, ct).ConfigureAwait(false));
        }

        try
        {
            await store.RequestStopAsync(runId, StopReasons.Cancel(who), ct).ConfigureAwait(false);
        }
        catch (UnknownRunException)
        {
            // Gone between the read and the stop (a run store's runs are not deleted today; say so plainly if they ever are).
            return new Cancelled(CancelOutcome.NotFound, null, null);
        }

        run = await store.GetRunAsync(runId, ct).ConfigureAwait(false) ?? run;
        return new Cancelled(CancelOutcome.Requested, run, await store.CountTasksAsync(runId, ct).ConfigureAwait(false));
    }

    /// <summary>What a refused cancel says: no such run, or the run's end.</summary>
    public static string Refusal(Cancelled c, string runId) => c.Outcome switch
    {
        CancelOutcome.NotFound => $"there is no run {runId}",
        CancelOutcome.Ended => $"run {runId} ended {c.Run!.State.Name()}; there is nothing to cancel",
        _ => "",
    };

    /// <summary>A state filter as a user writes it (running, failed, ...); a clear error for anything else.</summary>
    public static RunState? ParseState(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var states = Enum.GetValues<RunState>();
        return states.Where(s => string.Equals(s.Name(), text.Trim(), StringComparison.OrdinalIgnoreCase)).Select(s => (RunState?)s).FirstOrDefault()
            ?? throw new FilterException($"state '{text}' is not one of {string.Join(", ", states.Select(s => s.Name()))}");
    }

    /// <summary>
    /// A since filter as a user writes it: a duration back from <paramref name="now"/> (30m, 2h,
    /// 7d), or a date or a time with its offset (2026-11-26, 2026-11-26T10:00:00Z; a date alone
    /// is its midnight UTC); a clear error naming the filter (<paramref name="name"/>) for anything else.
    /// </summary>
    public static DateTimeOffset? ParseSince(string? text, DateTimeOffset now, string name = "since")
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var t = text.Trim();
        if (Quantities.TryParseDuration(t, out var back))
        {
            return now - back;
        }

        if (DateOnly.TryParseExact(t, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
        {
            return new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        }

        if (t.Contains('T', StringComparison.Ordinal)
            && (t.EndsWith('Z') || t.LastIndexOfAny(['+', '-']) > t.IndexOf('T', StringComparison.Ordinal))
            && DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at))
        {
            return at;
        }

        throw new FilterException($"{name} '{text}' is neither a duration back from now (30m, 2h, 7d) nor a date or time (2026-11-26, 2026-11-26T10:00:00Z)");
    }

    /// <summary>The held tasks as one phrase: "3 held (waiting for the machines' owners to leave room (Harvest:Policy when-idle))", or null when none is.</summary>
    public static string? Held(TaskCounts counts) =>
        counts.Held == 0 ? null
        : $"{counts.Held} held ({string.Join("; ", counts.HeldBecause.OrderBy(h => h.Key, StringComparer.Ordinal).Select(h => counts.HeldBecause.Count == 1 ? HoldReasons.Describe(h.Key) : $"{h.Value} {HoldReasons.Describe(h.Key)}"))})";

    /// <summary>A filter that cannot be read: a user's mistake, with what to write instead.</summary>
    public sealed class FilterException(string message) : PipelinesException(message, retryHelps: false);
}
