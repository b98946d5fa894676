using System.ComponentModel;
using System.Globalization;
using Pipelines.Runs;
using Pipelines.RunStore;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>
/// `pipelines runs`: recent runs, newest first, as `nextflow log` lists them: when, how long,
/// which run and workflow, its state and tasks (held ones too, while it goes on); filtered by
/// state, workflow and since, the filters of the run stores and the API (RunQuery).
/// </summary>
public sealed class RunsCommand : AsyncCommand<RunsCommand.Settings>
{
    public const string Schema = "pipelines.runs/1";

    public sealed class Settings : RunSourceSettings
    {
        [CommandOption("--state <STATE>")]
        [Description("Only runs in this state: running, gathering, succeeded, failed or cancelled.")]
        public string? State { get; init; }

        [CommandOption("--workflow <NAME>")]
        [Description("Only runs of this workflow (its name).")]
        public string? Workflow { get; init; }

        [CommandOption("--since <WHEN>")]
        [Description("Only runs created since: a duration back from now (30m, 2h, 7d) or a date or time (2026-11-26, 2026-11-26T10:00:00Z).")]
        public string? Since { get; init; }

        [CommandOption("-n|--limit <N>")]
        [Description("At most this many runs (default 20, at most 500).")]
        public int Limit { get; init; } = 20;

        [CommandOption("--offset <N>")]
        [Description("Skip this many of the newest first (with --limit: a page).")]
        public int Offset { get; init; }

        [CommandOption("--json")]
        [Description("Print the runs as JSON (schema pipelines.runs/1, docs/cli.md).")]
        public bool Json { get; init; }
    }

    /// <summary>A page of runs as --json prints it.</summary>
    internal sealed record RunsDocument(int Total, int Offset, int Limit, IReadOnlyList<RunDocument> Runs);

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (settings.Limit is < 1 or > RunCatalog.MaxLimit || settings.Offset < 0)
        {
            throw new RunCatalog.FilterException($"--limit must be between 1 and {RunCatalog.MaxLimit}, and --offset 0 or more");
        }

        var query = new RunQuery(settings.Workflow, RunCatalog.ParseState(settings.State), settings.Offset, settings.Limit, RunCatalog.ParseSince(settings.Since, DateTimeOffset.UtcNow));
        await using var source = await IRunSource.OpenAsync(settings, cancellationToken).ConfigureAwait(false);
        var page = await source.ListAsync(query, cancellationToken).ConfigureAwait(false);
        if (settings.Json)
        {
            JsonOut.Write(Schema, new RunsDocument(page.Total, query.Offset, query.Limit, page.Items));
            return Cli.Ok;
        }

        if (page.Items.Count == 0)
        {
            Console.WriteLine(page.Total == 0 ? $"no runs in {source.Name}" + (Filtered(query) ? " match the filters" : "") : $"no runs past the first {page.Total}");
            return Cli.Ok;
        }

        Console.WriteLine(Row("created", "duration", "run", "workflow", "state", "tasks"));
        foreach (var run in page.Items)
        {
            Console.WriteLine(Row(
                run.CreatedAt?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) ?? "",
                run.DurationSeconds is { } d ? Pipelines.Model.Quantities.FormatDuration(TimeSpan.FromSeconds(d)) : "",
                run.RunId,
                run.Workflow ?? "?",
                run.State,
                Tasks(run)));
        }

        if (page.Total > query.Offset + page.Items.Count)
        {
            Console.WriteLine($"... {page.Total - query.Offset - page.Items.Count} older run(s): --offset {query.Offset + page.Items.Count}, or --limit up to {RunCatalog.MaxLimit}");
        }

        return Cli.Ok;
    }

    /// <summary>A run's tasks in a few words: ended of total, the failed, and while it goes on the running and held.</summary>
    private static string Tasks(RunDocument run)
    {
        if (run.Counts is not { } c)
        {
            return run.Note is null ? "" : "(" + run.Note + ")";
        }

        var parts = new List<string>();
        if (!run.Ended)
        {
            parts.Add($"{c.Running} running");
            if (c.Held > 0)
            {
                parts.Add(RunCatalog.Held(c.ToCounts())!);
            }
        }

        parts.Add($"{c.Failed} failed");
        if (c.Cached > 0)
        {
            parts.Add($"{c.Cached} cached");
        }

        return $"{c.Succeeded + c.Cached + c.Failed + c.Cancelled + c.Split}/{c.Total} ({string.Join(", ", parts)})";
    }

    private static bool Filtered(RunQuery q) => q.Workflow is not null || q.State is not null || q.Since is not null;

    private static string Row(string created, string duration, string run, string workflow, string state, string tasks) =>
        $"{created,-19}  {duration,8}  {run,-24}  {workflow,-20}  {state,-11}  {tasks}";
}
