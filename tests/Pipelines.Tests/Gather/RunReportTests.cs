using System.Text;
using Pipelines.Gather;
using Pipelines.RunStore;

namespace Pipelines.Tests.Gather;

/// <summary>report.html of runs with tasks taken from the cache: every task drawn (cached ones grey) and named; what ran counted apart.</summary>
[Unit]
public sealed class RunReportTests
{
    private static readonly DateTime Start = new(2026, 12, 1, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void A_fully_cached_run_draws_a_grey_bar_for_every_task_and_names_each_and_lists_nothing_as_slowest()
    {
        var rows = Enumerable.Range(0, 12).Select(i => Row(i, "cached", cachedFrom: "earlier-run")).ToList();

        var html = Html(rows);

        Assert.Equal(12, Count(html, "<rect class=\"bar cached\""));
        Assert.Equal(12, Count(html, "fill=\"#9e9e9e\""));
        var cached = Between(html, "<table id=\"cached\"", "</table>");
        Assert.All(Enumerable.Range(0, 12), i => Assert.Contains($"<tr><td>{i} <code>task{i:D3}</code></td><td>work</td><td><code>earlier-run</code></td>", cached, StringComparison.Ordinal));
        Assert.Contains("<h2>Slowest 0 of 0 step attempt(s) that ran</h2>", html, StringComparison.Ordinal);
        Assert.Equal(0, Count(Between(html, "<table id=\"slowest\"", "</table>"), "<tr><td>"));
        Assert.Contains("<td id=\"steps-run\">0 step attempt(s) ran, 12 step(s) taken from the cache (12 row(s) in provenance/tasks.parquet)</td>", html, StringComparison.Ordinal);
        Assert.Contains("<h2>Taken from the cache: 12 step(s)</h2>", html, StringComparison.Ordinal);
    }

    [Fact]
    public void The_slowest_table_and_the_attempts_per_step_count_only_what_ran()
    {
        // The cached steps are the longest here (a slow copy): they still are no attempt of this run's.
        var rows = Enumerable.Range(0, 30).Select(i => i < 25 ? Row(i, "cached", seconds: 100 + i, cachedFrom: "earlier-run") : Row(i, "succeeded", seconds: i)).ToList();

        var html = Html(rows);

        var slowest = Between(html, "<table id=\"slowest\"", "</table>");
        Assert.Equal(5, Count(slowest, "<tr><td>"));
        Assert.DoesNotContain("cached", slowest, StringComparison.Ordinal);
        Assert.Contains("<h2>Slowest 5 of 5 step attempt(s) that ran</h2>", html, StringComparison.Ordinal);
        Assert.Contains("<tr><td>work</td><td class=\"num\">5</td><td class=\"num\">25</td>", html, StringComparison.Ordinal);
        Assert.Equal(25, Count(html, "<rect class=\"bar cached\""));
        Assert.Equal(5, Count(html, "<rect class=\"bar ok\""));
    }

    [Fact]
    public void Past_its_cap_the_table_of_cached_steps_says_how_many_more_there_are()
    {
        var rows = Enumerable.Range(0, RunReport.MaxFailed + 7).Select(i => Row(i, "cached", cachedFrom: "earlier-run")).ToList();

        var html = Html(rows);

        Assert.Equal(RunReport.MaxFailed, Count(Between(html, "<table id=\"cached\"", "</table>"), "<tr><td>"));
        Assert.Contains("and 7 more: every one is in provenance/tasks.parquet (status cached) and on the timeline.", html, StringComparison.Ordinal);
    }

    private static ProvenanceRow Row(int i, string status, double seconds = 0.01, string? cachedFrom = null) => new()
    {
        RunId = "r",
        TaskId = $"task{i:D3}",
        TaskIndex = i,
        Attempt = 1,
        Step = "work",
        Status = status,
        ExitCode = 0,
        Image = "img:1",
        ImageDigest = "sha256:00",
        Command = ["run"],
        Log = $"tasks/task{i:D3}/work.log",
        StartedAt = Start.AddSeconds(i),
        FinishedAt = Start.AddSeconds(i + seconds),
        Worker = "w" + (i % 2),
        CachedFrom = cachedFrom,
        WallSeconds = status == "cached" ? null : seconds,
    };

    private static string Html(IReadOnlyList<ProvenanceRow> rows)
    {
        var summary = new RunSummary
        {
            RunId = "r",
            Workflow = "w",
            Status = "succeeded",
            Counts = new RunSummaryCounts(rows.Count, rows.Count(r => r.Status == "succeeded"), rows.Count(r => r.Status == "cached"), 0, 0, 0, rows.Count),
            CreatedAt = Start,
            FinishedAt = Start.AddSeconds(200),
            InputUri = "s3://in/",
            OutputUri = "s3://out/r/",
            Engine = new RunSummaryEngine("pipelines", "0"),
        };
        return Encoding.UTF8.GetString(RunReport.Build(summary, ["work"], rows));
    }

    private static string Between(string text, string from, string to)
    {
        var start = text.IndexOf(from, StringComparison.Ordinal);
        Assert.True(start >= 0, $"no {from} in the report");
        return text[start..text.IndexOf(to, start, StringComparison.Ordinal)];
    }

    private static int Count(string text, string what)
    {
        var n = 0;
        for (var i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal))
        {
            n++;
        }

        return n;
    }
}
