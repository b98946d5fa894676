using System.Diagnostics;
using Parquet.Serialization;
using Pipelines.Gather;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Lineage;

/// <summary>
/// report.html opened in headless Chromium (Debian's, driven by tests/browser/report.mjs) with the
/// network off: the timeline and charts drew. Screenshots: .build/test-results/report*.png.
/// </summary>
[Collection(LineageCollection.Name)]
[Integration]
public sealed class ReportBrowserTests(LineageRunFixture fixture)
{
    [Fact]
    public async Task The_report_of_a_real_run_draws_its_timeline_and_duration_chart_and_links_the_logs()
    {
        var provenance = await fixture.Run.ProvenanceAsync();
        var html = Path.Combine(fixture.Folder, "report.html");
        var page = await File.ReadAllTextAsync(html);
        Assert.DoesNotContain("http://", page.Replace("http://www.w3.org/2000/svg", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.DoesNotContain("https://", page, StringComparison.Ordinal);

        // The worker measured every attempt (cpu_seconds, peak_memory_bytes, ...): the CPU and memory charts are drawn too.
        Assert.All(provenance, p => Assert.NotNull(p.CpuSeconds));
        Assert.Contains("id=\"chart-cpu\"", page, StringComparison.Ordinal);

        var png = Screenshot("report.png");
        var result = await NodeAsync("tests/browser/report.mjs", html, png, provenance.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), "resources");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.True(new FileInfo(png).Length > 10_000, "the screenshot is missing or empty");
    }

    [Fact]
    public async Task A_provenance_file_of_an_older_engine_without_the_resource_columns_still_draws_and_has_no_cpu_chart()
    {
        // The same run's provenance as an engine before the resource columns wrote it.
        var rows = (await fixture.Run.ProvenanceAsync()).Select(p => new OlderProvenanceRow(p)).ToList();
        using var temp = new TempFolder();
        var parquet = temp.Combine("tasks.parquet");
        await ParquetSerializer.SerializeAsync(rows, parquet);
        var summary = RunSummary.FromJson(await fixture.Run.ReadAsync("run.json"));
        byte[] bytes;
        await using (var file = File.OpenRead(parquet))
        {
            bytes = await RunReport.BuildAsync(summary, ["stats"], file, CancellationToken.None);
        }

        var html = temp.Combine("report.html");
        await File.WriteAllBytesAsync(html, bytes);
        Assert.DoesNotContain("id=\"chart-cpu\"", System.Text.Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);

        var png = Screenshot("report-older.png");
        var result = await NodeAsync("tests/browser/report.mjs", html, png, rows.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.True(new FileInfo(png).Length > 10_000, "the screenshot is missing or empty");
    }

    [Fact]
    public async Task The_report_of_a_fully_cached_run_draws_a_grey_bar_for_every_task_and_names_each()
    {
        // The same workflow into the same output again: every task is taken from the cache.
        var again = await CliRunner.RunAsync(["run", "workflows/fastq-stats.yaml", "--set", "output.uri=" + fixture.Temp.Combine("out")], fixture.Env);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("(0 succeeded, 20 cached, 0 failed, 0 cancelled)", again.Stdout, StringComparison.Ordinal);
        var runId = EndToEnd.RunFolder.RunIdFrom(again);
        var html = fixture.Temp.Combine("out", runId, "report.html");
        var page = await File.ReadAllTextAsync(html);
        Assert.All(Enumerable.Range(0, 20), i => Assert.Contains($"<tr><td>{i} <code>", page, StringComparison.Ordinal));
        Assert.Contains($"<code>{fixture.RunId}</code>", page, StringComparison.Ordinal);

        var png = Screenshot("report-cached.png");
        var result = await NodeAsync("tests/browser/report.mjs", html, png, "20", "cached=20");

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    private static string Screenshot(string name)
    {
        var png = Path.Combine(TestEnvironment.RepoRoot, ".build", "test-results", name);
        Directory.CreateDirectory(Path.GetDirectoryName(png)!);
        File.Delete(png);
        return png;
    }

    private static async Task<CliRunner.Result> NodeAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = TestEnvironment.RepoRoot };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("node " + string.Join(' ', args) + " did not end in 2 minutes");
        }

        return new CliRunner.Result(p.ExitCode, await stdout, await stderr);
    }
}
