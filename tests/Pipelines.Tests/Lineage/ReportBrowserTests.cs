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
[Collection("end-to-end")]
public sealed class ReportBrowserTests(LineageRunFixture fixture) : IClassFixture<LineageRunFixture>
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
