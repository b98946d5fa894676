using System.Text;
using System.Text.Json;
using Pipelines.Gather;
using Pipelines.Storage;
using Pipelines.Tenancy;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;
using Pipelines.Usage;

namespace Pipelines.Tests.Gather;

/// <summary>
/// run.json is a file format: what <see cref="RunSummary"/> writes reads back the same, and a
/// run.json written before the record existed (and one written by the CLI now) reads and
/// writes back byte for byte.
/// </summary>
[Integration]
public sealed class RunSummaryTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Fact]
    public void A_summary_written_and_read_back_is_the_same_summary()
    {
        var summary = new RunSummary
        {
            RunId = "20261201-094547-086301",
            Workflow = "gather-fixture",
            Status = "failed",
            Error = "1 malformed table part(s) left out",
            Counts = new RunSummaryCounts(3, 2, 1, 0, 0, 1, 7),
            Results = new Dictionary<string, RunSummaryTable>
            {
                ["table"] = new(12, ["results/table.parquet", "results/table.csv"]),
                ["empty"] = new(0, ["results/empty.csv"]),
            },
            Problems = ["gather 'table': task x: line 3: 1 cells, expected 2 (n, v)"],
            Warnings = ["gather 'empty': no output of any task matches make/*.csv: the table is empty", "ünïcode & <html>"],
            CreatedAt = new DateTimeOffset(2026, 12, 1, 9, 45, 47, TimeSpan.Zero),
            FinishedAt = new DateTimeOffset(2026, 12, 1, 11, 45, 48, 618, TimeSpan.FromHours(2)),
            DurationSeconds = 1.618,
            InputUri = "s3://bucket/in/",
            OutputUri = "s3://bucket/out/20261201-094547-086301/",
            Images = new Dictionary<string, string> { ["pipelines-samples/pair-check:1"] = "sha256:e1c0" },
            Engine = new RunSummaryEngine("pipelines", "0.1.0"),
        };

        var json = summary.ToJson();
        var read = RunSummary.FromJson(json);

        Assert.Equal(json, read.ToJson());
        Assert.Equal(summary.Counts, read.Counts);
        Assert.Equal(summary.Engine, read.Engine);
        Assert.Equal(["table", "empty"], read.Results.Keys);
        Assert.Equal(summary.Results["table"].Files, read.Results["table"].Files);
        Assert.Equal(12, read.Results["table"].Rows);
        Assert.Equal(summary.Problems, read.Problems);
        Assert.Equal(summary.Warnings, read.Warnings);
        Assert.Equal(summary.CreatedAt, read.CreatedAt);
        Assert.Equal(summary.FinishedAt, read.FinishedAt);
        Assert.Equal(summary.Images, read.Images);
        Assert.Equal((summary.RunId, summary.Workflow, summary.Status, summary.Error, summary.DurationSeconds, summary.InputUri, summary.OutputUri), (read.RunId, read.Workflow, read.Status, read.Error, read.DurationSeconds, read.InputUri, read.OutputUri));

        // The times stay in the round-trip UTC form that run.json has always had.
        var text = Encoding.UTF8.GetString(json);
        Assert.Contains("\"created_at\": \"2026-12-01T09:45:47.0000000Z\"", text, StringComparison.Ordinal);
        Assert.Contains("\"finished_at\": \"2026-12-01T09:45:48.6180000Z\"", text, StringComparison.Ordinal);
        Assert.Contains("\"error\": \"1 malformed table part(s) left out\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public void The_usage_block_round_trips_and_an_older_run_json_reads_without_it()
    {
        var usage = RunUsage.Of(
            [
                new UsageRecord("r/0/1", TenantId.Default, UsageKinds.Task, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddSeconds(4), UsageOutcomes.Vacated) { WallSeconds = 4, CpuSeconds = 1, Harvested = true },
                new UsageRecord("r/0/2", TenantId.Default, UsageKinds.Task, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddSeconds(6), UsageOutcomes.Succeeded) { WallSeconds = 6, CpuSeconds = 3, GbSeconds = 2, BytesIn = 5, BytesOut = 7 },
            ],
            new PriceSheet { Currency = "credits", CpuSecond = 1, GbSecond = 0.5, HarvestedDiscount = 0.5 });
        var summary = RunSummary.FromJson(Fixture()) with { Usage = usage };

        var read = RunSummary.FromJson(summary.ToJson());

        Assert.Equal(usage, read.Usage);
        Assert.Equal((2L, 4.0, 10.0, 0.4, 1L, 4.0), (usage.Deliveries, usage.CpuSeconds, usage.WallSeconds, usage.HarvestedShare, usage.Wasted.Deliveries, usage.Wasted.WallSeconds));
        Assert.Equal((1 * 1 * 0.5) + (3 * 1) + (2 * 0.5), usage.Cost, 9); // the harvested delivery's CPU at half price
        Assert.Null(RunSummary.FromJson(Fixture()).Usage);
        Assert.DoesNotContain("\"usage\"", Encoding.UTF8.GetString(RunSummary.FromJson(Fixture()).ToJson()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_usage_of_a_run_going_on_from_the_ledgers_sums_is_the_block_its_records_make()
    {
        // A run across midnight: the ledger sums it in two day buckets; the run page and GET /api/runs/{id} add them up.
        var ledger = new InMemoryUsageStore();
        var midnight = new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero);
        UsageRecord[] records =
        [
            new("r/0/1", TenantId.Default, UsageKinds.Task, midnight.AddHours(-1), midnight.AddMinutes(-1), UsageOutcomes.Vacated) { RunId = "r", TaskIndex = 0, Delivery = 1, WallSeconds = 3540.25, CpuSeconds = 10.125, Harvested = true },
            new("r/0/2", TenantId.Default, UsageKinds.Task, midnight, midnight.AddMinutes(1), UsageOutcomes.Succeeded) { RunId = "r", TaskIndex = 0, Delivery = 2, WallSeconds = 60.5, CpuSeconds = 30.333, GbSeconds = 15.125, BytesIn = 5, BytesOut = 7 },
            new("r/1/1", TenantId.Default, UsageKinds.Task, midnight, midnight.AddMinutes(2), UsageOutcomes.Failed) { RunId = "r", TaskIndex = 1, Delivery = 1, WallSeconds = 120, CpuSeconds = 2.5, GbSeconds = 30 },
            new("other/0/1", TenantId.Default, UsageKinds.Task, midnight, midnight.AddMinutes(2), UsageOutcomes.Succeeded) { RunId = "other", TaskIndex = 0, Delivery = 1, WallSeconds = 99, CpuSeconds = 99 },
        ];
        foreach (var r in records)
        {
            ledger.Add(r);
        }

        var sheet = new PriceSheet { Currency = "credits", CpuSecond = 0.5, GbSecond = 0.25, HarvestedDiscount = 0.5 };
        var rows = await ledger.AggregateAsync(new UsageQuery(RunId: "r"), CancellationToken.None);
        var live = RunUsage.Of(rows, sheet);

        Assert.Equal(2, rows.Select(r => r.Bucket).Distinct().Count());
        Assert.Equal(RunUsage.Of(await ledger.ForRunAsync("r", CancellationToken.None), sheet), live);
        Assert.Equal((3L, 42.958, 2L, 12.625), (live.Deliveries, live.CpuSeconds, live.Wasted.Deliveries, live.Wasted.CpuSeconds));
        Assert.Equal(
            "30.229 credits for 3 deliveries: 42.958 CPU s, 45.125 GB-s, 3720.75 wall s, 95% harvested; wasted (vacated, failed): 2 deliveries, 12.625 CPU s",
            live.Line());
    }

    [Fact]
    public void A_summary_without_an_error_writes_error_null_as_before()
    {
        var summary = RunSummary.FromJson(Fixture()) with { Error = null };

        Assert.Contains("\"error\": null,", Encoding.UTF8.GetString(summary.ToJson()), StringComparison.Ordinal);
    }

    [Fact]
    public void A_run_json_written_before_the_record_reads_and_writes_back_byte_for_byte()
    {
        // Written by `pipelines run` 0.1.0 while run.json was still an untyped JsonObject.
        var json = Fixture();

        var summary = RunSummary.FromJson(json);

        Assert.Equal(Encoding.UTF8.GetString(json), Encoding.UTF8.GetString(summary.ToJson()));
        Assert.Equal("failed", summary.Status);
        Assert.Equal(new RunSummaryCounts(3, 3, 0, 0, 0, 0, 3), summary.Counts);
        Assert.Equal(["results/table.parquet", "results/table.csv"], summary.Results["table"].Files);
        Assert.Equal("gather 'never': no output of any task matches make/*.csv: the table is empty", summary.Warnings[^1]);
        Assert.Equal(new DateTimeOffset(2026, 12, 1, 9, 45, 47, TimeSpan.Zero).AddTicks(4025001), summary.CreatedAt);
    }

    [Fact]
    public void A_run_json_from_before_problems_and_warnings_reads_them_as_empty()
    {
        using var doc = JsonDocument.Parse(Fixture());
        var older = new Dictionary<string, JsonElement>();
        foreach (var p in doc.RootElement.EnumerateObject().Where(p => p.Name is not ("problems" or "warnings")))
        {
            older[p.Name] = p.Value;
        }

        var summary = RunSummary.FromJson(JsonSerializer.SerializeToUtf8Bytes(older));

        Assert.Empty(summary.Problems);
        Assert.Empty(summary.Warnings);
        Assert.Equal(2, summary.Results.Count);
    }

    [Fact]
    public async Task The_run_json_that_the_cli_writes_reads_back_as_what_the_cli_printed()
    {
        var output = _temp.Combine("out");
        var result = await CliRunner.RunAsync(
            ["run", "workflows/fastq-stats.yaml", "--set", "output.uri=" + output, "--set", "input.include=[\"lane1/*.fastq\"]"],
            new Dictionary<string, string?> { ["PIPELINES_HOME"] = _temp.Combine("home") });

        Assert.True(result.ExitCode == 0, result.ToString());
        var runId = RunFolder.RunIdFrom(result);
        var folder = new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1")).Open(output).Child(runId);
        var json = await folder.Store.ReadAllAsync(folder.Key("run.json"), CancellationToken.None);
        var summary = RunSummary.FromJson(json);

        Assert.Equal(json, summary.ToJson());
        Assert.Equal((runId, "fastq-stats", "succeeded", (string?)null), (summary.RunId, summary.Workflow, summary.Status, summary.Error));
        Assert.Equal(folder.Uri, summary.OutputUri);
        Assert.Contains($"  tasks:   {summary.Counts.Tasks} ({summary.Counts.Succeeded} succeeded, ", result.Stdout, StringComparison.Ordinal);
        var stats = summary.Results["stats"];
        Assert.Contains($"  results: stats: {stats.Rows} rows gathered ({string.Join(", ", stats.Files)})", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(summary.Counts.Inputs, stats.Rows);
        Assert.StartsWith("sha256:", Assert.Single(summary.Images).Value, StringComparison.Ordinal);
        Assert.True(summary.FinishedAt >= summary.CreatedAt);
    }

    private static byte[] Fixture() =>
        File.ReadAllBytes(Path.Combine(TestEnvironment.RepoRoot, "tests", "Pipelines.Tests", "Gather", "RunJson", "written-by-0.1.0.json"));

    public void Dispose() => _temp.Dispose();
}
