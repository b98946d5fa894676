using Pipelines.Gather;
using Pipelines.Model;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Lineage;

/// <summary>The gather's lineage columns, and the report's bounds, on real files in a local run folder.</summary>
[Unit]
public sealed class LineageColumnsTests : IDisposable
{
    private static readonly GatherSpec Spec = new("table", "make", "*.tsv", TableFormat.Tsv, Header: true, Columns: null, [ResultFormat.Csv]);

    private readonly TempFolder _temp = new();
    private readonly StorageLocation _run;

    public LineageColumnsTests()
    {
        Directory.CreateDirectory(_temp.Combine("run"));
        _run = new StorageLocation(new LocalObjectStore(_temp.Combine("run")), "", _temp.Combine("run") + "/");
    }

    [Theory]
    [InlineData("lane1/a.fastq", "lane1/a.fastq")]
    [InlineData("/in/lane2/a.fastq", "lane2/a.fastq")]
    [InlineData("b.fastq", "lane1/b.fastq")]
    [InlineData("a.fastq", null)] // two inputs are called a.fastq: the name alone names neither
    [InlineData("S001", null)]
    public void A_rows_source_file_is_the_input_a_cell_names_by_key_container_path_or_unshared_file_name(string cell, string? expected)
    {
        var source = new SourceFile(["lane1/a.fastq", "lane1/b.fastq", "lane2/a.fastq"]);

        Assert.Equal(expected, source.Of(["x", cell, "3"]));
    }

    [Fact]
    public void A_task_of_one_input_gives_that_input_to_every_row()
    {
        Assert.Equal("only.fastq", new SourceFile(["only.fastq"]).Of(["anything"]));
    }

    [Fact]
    public async Task Gathered_rows_carry_their_task_source_file_and_part()
    {
        var one = await PartAsync("t1", "file\tn\nlane1/b.fastq\t2\n/in/lane1/a.fastq\t1\npair\t3\n", ["lane1/a.fastq", "lane1/b.fastq"]);
        var two = await PartAsync("t2", "file\tn\nwhatever\t4\n", ["lane3/c.fastq"]);

        await TableGather.GatherAsync(Spec, [one, two], _run, leaveOutMalformed: false, _temp.Combine("scratch"), CancellationToken.None);

        Assert.Equal(
            [
                "file,n,_task_id,_source_file,_part",
                "lane1/b.fastq,2,t1,lane1/b.fastq,tasks/t1/make/out.tsv",
                "/in/lane1/a.fastq,1,t1,lane1/a.fastq,tasks/t1/make/out.tsv",
                "pair,3,t1,,tasks/t1/make/out.tsv",
                "whatever,4,t2,lane3/c.fastq,tasks/t2/make/out.tsv",
            ],
            await File.ReadAllLinesAsync(_temp.Combine("run", "results", "table.csv")));
    }

    [Fact]
    public async Task A_part_with_a_column_the_gather_adds_is_refused_by_name()
    {
        var part = await PartAsync("t1", "file\t_source_file\nx\ty\n", ["x"]);

        var e = await Assert.ThrowsAsync<PipelinesException>(() => TableGather.GatherAsync(Spec, [part], _run, leaveOutMalformed: false, _temp.Combine("scratch"), CancellationToken.None));

        Assert.Equal("gather 'table': the parts have a column named _source_file, which the gather adds itself (_task_id, _source_file, _part); name the columns otherwise with `columns`", e.Message);
        Assert.False(e.RetryHelps);
    }

    [Fact]
    public void A_timeline_of_many_bars_draws_how_busy_each_worker_was_in_bounded_size()
    {
        var start = new DateTime(2026, 12, 1, 0, 0, 0, DateTimeKind.Utc);
        var small = new Timeline(start, start.AddHours(1));
        var large = new Timeline(start, start.AddHours(1));
        for (var i = 0; i < 100_000; i++)
        {
            var bar = new TimelineBar("worker-" + (i % 3), i, "t" + i, "s", 1, i % 10 == 0 ? "failed" : "succeeded", start.AddSeconds(i * 0.036), start.AddSeconds((i * 0.036) + 0.5));
            large.Add(bar);
            if (i < 100)
            {
                small.Add(bar);
            }
        }

        var few = small.ToSvg("t");
        var many = large.ToSvg("t");

        Assert.Equal(100, Count(few, "<rect class=\"bar "));
        Assert.Equal(100_000, large.Count);
        Assert.Contains("100000 steps of task attempts, drawn as how busy each worker was", many, StringComparison.Ordinal);
        Assert.InRange(Count(many, "<rect class=\"bar busy\""), 3 * (Timeline.Bins - 2), 3 * Timeline.Bins);
        Assert.True(many.Length < 400_000, $"{many.Length} characters");
    }

    [Fact]
    public async Task The_report_lists_the_slowest_and_failed_attempts_up_to_its_caps_with_their_logs()
    {
        var start = new DateTime(2026, 12, 1, 0, 0, 0, DateTimeKind.Utc);
        var rows = Enumerable.Range(0, 300).Select(i => new ProvenanceRow
        {
            RunId = "r",
            TaskId = $"task{i:D3}",
            TaskIndex = i,
            Attempt = 1,
            Step = "work",
            Status = i % 3 == 0 ? "failed" : "succeeded",
            ExitCode = i % 3 == 0 ? 2 : 0,
            Image = "img:1",
            ImageDigest = "sha256:00",
            Command = ["run"],
            Log = $"tasks/task{i:D3}/work.log",
            StartedAt = start.AddSeconds(i),
            FinishedAt = start.AddSeconds(i + (i % 50)),
            Worker = "w" + (i % 2),
            Error = i % 3 == 0 ? "exit 2: bad <input>" : null,
            CpuSeconds = i % 4 == 0 ? null : i * 0.01,
            PeakMemoryBytes = i % 5 == 0 ? null : 1000L * i,
            WallSeconds = i % 7 == 0 ? null : i % 50,
        }).ToList();
        var path = _temp.Combine("tasks.parquet");
        await ProvenanceFile.WriteAsync(rows, path, CancellationToken.None);
        var summary = new RunSummary
        {
            RunId = "r",
            Workflow = "w",
            Status = "failed",
            Counts = new RunSummaryCounts(300, 200, 0, 100, 0, 0, 300),
            CreatedAt = start,
            FinishedAt = start.AddSeconds(400),
            InputUri = "s3://in/",
            OutputUri = "s3://out/r/",
            Engine = new RunSummaryEngine("pipelines", "0"),
        };

        string html;
        await using (var file = File.OpenRead(path))
        {
            html = System.Text.Encoding.UTF8.GetString(await RunReport.BuildAsync(summary, ["work"], file, CancellationToken.None));
        }

        Assert.Contains("<h2>Failed step attempts: 100</h2>", html, StringComparison.Ordinal);
        Assert.Contains("and 50 more: every one is in provenance/tasks.parquet", html, StringComparison.Ordinal);
        Assert.Contains("exit 2: bad &lt;input&gt;", html, StringComparison.Ordinal);
        Assert.DoesNotContain("bad <input>", html, StringComparison.Ordinal);
        var slowest = html[html.IndexOf("<table id=\"slowest\"", StringComparison.Ordinal)..html.IndexOf("<h2>Failed", StringComparison.Ordinal)];
        Assert.Equal(RunReport.Slowest, Count(slowest, "<tr><td>"));
        Assert.Contains("<a href=\"tasks/task049/work.log\">work.log</a>", slowest, StringComparison.Ordinal);
        Assert.Equal(300, Count(html, "<rect class=\"bar "));

        // The gather draws the report from the rows it holds, not from the file: the same page.
        Assert.Equal(html, System.Text.Encoding.UTF8.GetString(RunReport.Build(summary, ["work"], rows)));
        Assert.Contains("<h2>CPU time per step</h2>", html, StringComparison.Ordinal);
    }

    private async Task<TablePartRef> PartAsync(string task, string content, IReadOnlyList<string> inputs)
    {
        var key = $"tasks/{task}/make/out.tsv";
        Directory.CreateDirectory(Path.GetDirectoryName(_temp.Combine("run", key))!);
        await File.WriteAllTextAsync(_temp.Combine("run", key), content);
        return new TablePartRef(task, key, inputs);
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

    public void Dispose() => _temp.Dispose();
}
