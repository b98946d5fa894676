using System.Globalization;
using Pipelines.Gather;
using Pipelines.Runs;
using Pipelines.RunStore;

namespace Pipelines.Cli;

/// <summary>
/// A run as the CLI shows it, whichever way it was read (the run store, a server, or an
/// embedded run's folder and index): `status` and `run` print it as lines or, with --json, as
/// the document <see cref="Schema"/>; `runs` lists it. One home for what a run's summary says.
/// </summary>
internal sealed record RunDocument(
    string RunId,
    string? Workflow,
    string State,
    RunDocument.TaskCountsDocument? Counts,
    DateTimeOffset? CreatedAt,
    DateTimeOffset? FinishedAt,
    double? DurationSeconds,
    string OutputUri,
    string? StopReason,
    string? Error)
{
    public const string Schema = "pipelines.run/1";

    /// <summary>The state of an embedded run whose process ended before the run did (no run.json, no live process).</summary>
    public const string Interrupted = "interrupted";

    private const int FailedShown = 5;
    private const int NotesShown = 10;

    /// <summary>The gathered tables (from run.json), once the run has ended.</summary>
    public IReadOnlyDictionary<string, RunSummaryTable>? Results { get; init; }

    public IReadOnlyList<string>? Problems { get; init; }

    public IReadOnlyList<string>? Warnings { get; init; }

    /// <summary>The first failed tasks: index, id, exit code, the error's first line, the first inputs.</summary>
    public IReadOnlyList<FailedTask>? FailedTasks { get; init; }

    /// <summary>The queued tasks held back, a few of them with who held them and why.</summary>
    public IReadOnlyList<HeldTask>? HeldTasks { get; init; }

    /// <summary>`run` only: how long the command waited, from submission to the end.</summary>
    public double? WallSeconds { get; init; }

    /// <summary>`run --candidate` only: how the canary went.</summary>
    public CanaryDocument? Canary { get; init; }

    /// <summary>What the run used and cost (run.json's usage block): once it has ended, its run.json's; while it goes on, the ledger's so far (a server, PostgreSQL).</summary>
    public Usage.RunUsage? Usage { get; init; }

    /// <summary>Something the reader should know: the run has not ended and its counts are not known here, and the like.</summary>
    public string? Note { get; init; }

    /// <summary>Counts of a run's tasks by state; held is part of queued, by reason in held_because.</summary>
    public sealed record TaskCountsDocument(int Total, int Queued, int Held, int Running, int Succeeded, int Cached, int Failed, int Cancelled, int Split, IReadOnlyDictionary<string, int> HeldBecause)
    {
        public static TaskCountsDocument From(TaskCounts c) => new(c.Total, c.Queued, c.Held, c.Running, c.Succeeded, c.Cached, c.Failed, c.Cancelled, c.Split, c.HeldBecause);

        public static TaskCountsDocument From(RunSummaryCounts c) => new(c.Tasks, 0, 0, 0, c.Succeeded, c.Cached, c.Failed, c.Cancelled, c.Split, new Dictionary<string, int>());

        public TaskCounts ToCounts() => new(Queued, Running, Succeeded, Failed, Cached, Cancelled) { Split = Split, HeldBecause = HeldBecause };
    }

    public sealed record FailedTask(int Index, string TaskId, long? ExitCode, string? Error, IReadOnlyList<string> Inputs);

    public sealed record HeldTask(int Index, string TaskId, string Reason, string Detail, string Worker, DateTimeOffset Since);

    /// <summary>A canary's outcome: the candidate's run and how it ended, the verdict (null when nothing was compared), the files.</summary>
    public sealed record CanaryDocument(string CandidateRunId, string CandidateState, string? CandidateError, string? Verdict, string? Diff, string? Summary);

    public bool Ended => State is "succeeded" or "failed" or "cancelled" or Interrupted;

    /// <summary>A run of the run store (or a server's view of one) with its counts, and its run.json once it has one.</summary>
    public static RunDocument From(RunRecord run, TaskCounts counts, RunSummary? summary) =>
        new RunDocument(run.RunId, run.WorkflowName, run.State.Name(), TaskCountsDocument.From(counts), run.CreatedAt, run.FinishedAt,
            Math.Round(((run.FinishedAt ?? DateTimeOffset.UtcNow) - run.CreatedAt).TotalSeconds, 3), run.OutputUri, run.StopReason, run.Error)
            .WithSummary(summary);

    /// <summary>An ended embedded run, from its run.json alone.</summary>
    public static RunDocument From(RunSummary summary) =>
        new RunDocument(summary.RunId, summary.Workflow, summary.Status, TaskCountsDocument.From(summary.Counts), summary.CreatedAt, summary.FinishedAt,
            summary.DurationSeconds, summary.OutputUri, null, summary.Error).WithSummary(summary);

    private RunDocument WithSummary(RunSummary? summary) => summary is null ? this : this with
    {
        Results = summary.Results,
        Problems = summary.Problems,
        Warnings = summary.Warnings,
        Usage = summary.Usage ?? Usage,
    };

    /// <summary>The failed tasks to show, from the run's tasks (the first <see cref="FailedShown"/>).</summary>
    public static IReadOnlyList<FailedTask> Failed(IEnumerable<TaskRecord> failed) =>
        failed.Take(FailedShown).Select(t => new FailedTask(t.Index, t.TaskId, t.ExitCode, (t.Error ?? "").Split('\n')[0], t.Inputs.Take(2).Select(i => i.Key).ToList())).ToList();

    /// <summary>The held tasks to show (a few), from the run's queued tasks.</summary>
    public static IReadOnlyList<HeldTask> Held(IEnumerable<TaskRecord> queued) =>
        queued.Where(t => t.Hold is not null).Take(3).Select(t => new HeldTask(t.Index, t.TaskId, t.Hold!.Reason, t.Hold.Detail, t.Hold.Worker, t.Hold.Since)).ToList();

    /// <summary>
    /// The summary as lines: <paramref name="header"/> first (status: "run ID (workflow): state";
    /// run: "run ID state in 3.4s"), then tasks (queued, held and running while the run goes
    /// on), times, results, notes, the error, the first failed tasks and the output.
    /// </summary>
    public IReadOnlyList<string> Lines(string header, bool times)
    {
        var lines = new List<string> { header };
        if (Counts is { } c)
        {
            var counts = TaskCounts();
            lines.Add($"  tasks:   {c.Total} ({(Ended ? "" : $"{c.Queued} queued, {c.Running} running, ")}{c.Succeeded} succeeded, {c.Cached} cached, {c.Failed} failed, {c.Cancelled} cancelled{(c.Split > 0 ? $", {c.Split} split" : "")})");
            if (!Ended && RunCatalog.Held(counts) is { } held)
            {
                lines.Add($"  held:    {held}");
                lines.AddRange((HeldTasks ?? []).Select(h => $"  held:    task {h.Index} by {h.Worker} since {h.Since.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)}: {h.Detail}"));
            }
        }

        if (times && CreatedAt is { } created)
        {
            lines.Add($"  created: {created.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)}" + (FinishedAt is { } f ? $", finished {f.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)} ({DurationSeconds?.ToString("0.0", CultureInfo.InvariantCulture)}s)" : ""));
        }

        if (Results is not null)
        {
            lines.AddRange(Results.Select(r => $"  results: {r.Key}: {r.Value.Rows} rows gathered ({string.Join(", ", r.Value.Files)})"));
        }
        else if (Ended && State != Interrupted)
        {
            lines.Add("  results: none (run.json was not written)");
        }

        if (Usage is { } usage)
        {
            lines.Add("  cost:    " + usage.Line());
        }

        lines.AddRange(Notes(Problems, "problem"));
        lines.AddRange(Notes(Warnings, "warning"));
        if (Note is not null)
        {
            lines.Add("  note:    " + Note);
        }

        if (Error is not null)
        {
            lines.Add("  error:   " + Error);
        }

        foreach (var t in FailedTasks ?? [])
        {
            lines.Add($"  failed:  task {t.Index} ({t.TaskId}{(t.Inputs.Count > 0 ? ", " + string.Join(" ", t.Inputs) : "")}): {t.Error}");
        }

        if (Counts is { Failed: > FailedShown } many && FailedTasks is { Count: > 0 })
        {
            lines.Add($"  failed:  ... and {many.Failed - FailedTasks.Count} more (see provenance/tasks.parquet)");
        }

        lines.Add("  output:  " + OutputUri);
        return lines;
    }

    public TaskCounts TaskCounts() => Counts?.ToCounts() ?? new TaskCounts(0, 0, 0, 0, 0, 0);

    /// <summary>The progress line while the run goes on: ended of total, how they ended, running, held, gathering.</summary>
    public static string Progress(TaskCounts c, bool gathering) =>
        $"{c.Ended}/{c.Total} tasks ended ({c.Succeeded} succeeded, {c.Cached} cached, {c.Failed} failed), {c.Running} running"
        + (RunCatalog.Held(c) is { } held ? ", " + held : "")
        + (gathering ? ", gathering" : "");

    private static IEnumerable<string> Notes(IReadOnlyList<string>? items, string label)
    {
        items ??= [];
        foreach (var item in items.Take(NotesShown))
        {
            yield return $"  {label}: {item}";
        }

        if (items.Count > NotesShown)
        {
            yield return $"  {label}: ... and {items.Count - NotesShown} more (see run.json)";
        }
    }
}
