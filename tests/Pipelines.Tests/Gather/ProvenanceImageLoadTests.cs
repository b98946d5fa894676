using System.Text;
using Parquet.Serialization;
using Pipelines.Containers;
using Pipelines.Gather;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Gather;

/// <summary>
/// The image_load and image_load_seconds columns of tasks.parquet on real files: written and read
/// back, null in a file of an engine before them, and listed by the report within its bounds.
/// </summary>
[Unit]
public sealed class ProvenanceImageLoadTests : IDisposable
{
    private static readonly DateTime Start = new(2026, 12, 1, 12, 0, 0, DateTimeKind.Utc);

    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    private static ProvenanceRow Row(int i, ImageArrival? image) => new()
    {
        RunId = "r",
        TaskId = "t" + i,
        TaskIndex = i,
        Attempt = 1,
        Step = "size",
        Status = "succeeded",
        Image = "algorithm://sizes@stable",
        ImageDigest = "sha256:" + new string('a', 64),
        Log = $"tasks/t{i}/size.log",
        StartedAt = Start.AddSeconds(i),
        FinishedAt = Start.AddSeconds(i + 1),
        Worker = "w:1",
        ImageLoadSeconds = image?.Seconds,
        ImageLoad = image?.Text,
    };

    private async Task<List<ProvenanceEntry>> ReadAsync(string path)
    {
        await using var file = File.OpenRead(path);
        var entries = new List<ProvenanceEntry>();
        await foreach (var e in ProvenanceFile.ReadAsync(file, CancellationToken.None))
        {
            entries.Add(e);
        }

        return entries;
    }

    private static RunSummary Summary() => new()
    {
        RunId = "r",
        Workflow = "sizes",
        Status = "succeeded",
        Counts = new RunSummaryCounts(1, 1, 0, 0, 0, 0, 1),
        CreatedAt = Start,
        FinishedAt = Start.AddMinutes(5),
        InputUri = "/in/",
        OutputUri = "/out/",
        Engine = new RunSummaryEngine("pipelines", "0.1.0"),
    };

    [Fact]
    public async Task Each_attempts_image_load_is_written_and_read_back_and_null_where_the_image_was_there()
    {
        var rows = new List<ProvenanceRow>
        {
            Row(0, new ImageArrival(ImageArrivalKind.Loaded, null, 1.25)),
            Row(1, new ImageArrival(ImageArrivalKind.Waited, null, 0.5)),
            Row(2, new ImageArrival(ImageArrivalKind.Pulled, "registry.local:5000/team/sizes:1", 0.75)),
            Row(3, null),
        };
        var path = _temp.Combine("tasks.parquet");
        await ProvenanceFile.WriteAsync(rows, path, CancellationToken.None);

        var read = (await ReadAsync(path)).Select(e => (e.Row.ImageLoad, e.Row.ImageLoadSeconds)).ToList();

        Assert.Equal(
            [
                ("loaded from the algorithm store", 1.25),
                ("waited for this worker's load of it from the algorithm store", 0.5),
                ("pulled from its registry as registry.local:5000/team/sizes:1", 0.75),
                (null, null),
            ],
            read);
    }

    [Fact]
    public async Task A_file_of_an_older_engine_without_the_image_and_trace_columns_reads_with_nulls_and_its_report_lists_no_loads()
    {
        var path = _temp.Combine("older.parquet");
        await ParquetSerializer.SerializeAsync(Enumerable.Range(0, 3).Select(i => new OlderProvenanceRow(Row(i, null))).ToList(), path);

        var entries = await ReadAsync(path);
        await using var file = File.OpenRead(path);
        var html = Encoding.UTF8.GetString(await RunReport.BuildAsync(Summary(), ["size"], file, CancellationToken.None));

        Assert.Equal(3, entries.Count);
        Assert.All(entries, e => Assert.Equal((null, null), (e.Row.ImageLoad, e.Row.ImageLoadSeconds)));
        Assert.All(entries, e => Assert.Equal((null, null), (e.Row.TraceId, e.Row.SpanId)));
        Assert.Equal(["t0", "t1", "t2"], entries.Select(e => e.Row.TaskId));
        Assert.DoesNotContain("image-loads", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_report_lists_the_attempts_that_waited_for_their_image_up_to_its_bound_and_counts_the_rest()
    {
        var report = new RunReport(Summary(), ["size"]);
        var n = RunReport.MaxFailed + 10;
        for (var i = 0; i < n; i++)
        {
            report.Add(new ProvenanceEntry(Row(i, new ImageArrival(i == 0 ? ImageArrivalKind.Loaded : ImageArrivalKind.Waited, null, 0.5)), ResourceUse.None));
        }

        report.Add(new ProvenanceEntry(Row(n, null), ResourceUse.None));
        var html = report.ToHtml();

        Assert.Contains($"Image loads: {n} step attempt(s) waited for their image, 30 s in all", html, StringComparison.Ordinal);
        var table = html[html.IndexOf("<table id=\"image-loads\">", StringComparison.Ordinal)..];
        table = table[..table.IndexOf("</table>", StringComparison.Ordinal)];
        Assert.Equal(RunReport.MaxFailed + 1, table.Split("<tr>").Length - 1);
        Assert.Single(table.Split("<tr>"), r => r.Contains("<td>loaded from the algorithm store</td>", StringComparison.Ordinal));
        Assert.Contains($"and {n - RunReport.MaxFailed} more: every one is in provenance/tasks.parquet (image_load_seconds)", html, StringComparison.Ordinal);
    }
}
