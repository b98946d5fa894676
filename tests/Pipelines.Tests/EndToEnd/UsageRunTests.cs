using System.Text.Json;
using Pipelines.Storage;
using Pipelines.Tests.Containers;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// A run's usage as a user finds it in run.json (and report.html): the sums of its provenance
/// rows' figures (CPU, wall, reserved memory times wall, staged and kept bytes), one delivery a
/// task, priced by the configured sheet; `pipelines status` prints its cost. The step burns a known amount of CPU in a container of its own.
/// </summary>
[Integration]
public sealed class UsageRunTests : IDisposable
{
    private const long Reserved = 256L * 1024 * 1024;
    private readonly TempFolder _temp = new();

    [Fact]
    public async Task The_usage_of_a_run_equals_the_sum_of_its_provenance_rows_figures_priced_by_the_sheet()
    {
        var env = new Dictionary<string, string?>
        {
            ["PIPELINES_HOME"] = _temp.Combine("home"),
            ["PIPELINES_Prices__Currency"] = "credits",
            ["PIPELINES_Prices__CpuSecond"] = "0.5",
            ["PIPELINES_Prices__GbSecond"] = "0.25",
        };
        var result = await CliRunner.RunAsync(["run", Workflow(), "--local-workers", "2"], env);

        Assert.True(result.ExitCode == 0, result.ToString());
        var run = new RunFolder(new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1")).Open(_temp.Combine("out")).Child(RunFolder.RunIdFrom(result)));
        var rows = await run.ProvenanceAsync();
        using var json = await run.RunJsonAsync();
        var usage = json.RootElement.GetProperty("usage");

        Assert.Equal(2, rows.Count);
        Assert.All(rows, r => Assert.NotNull(r.CpuSeconds));
        var cpu = rows.Sum(r => r.CpuSeconds!.Value);
        var wall = rows.Sum(r => r.WallSeconds!.Value);
        var gbSeconds = rows.Sum(r => Reserved / (double)(1L << 30) * r.WallSeconds!.Value);
        Assert.Equal(2, usage.GetProperty("deliveries").GetInt64());
        Assert.Equal(cpu, usage.GetProperty("cpu_seconds").GetDouble(), 0.002);
        Assert.Equal(wall, usage.GetProperty("wall_seconds").GetDouble(), 0.002);
        Assert.Equal(gbSeconds, usage.GetProperty("gb_seconds").GetDouble(), 0.002);
        Assert.Equal(rows.SelectMany(r => r.Inputs).Sum(f => f.Size), usage.GetProperty("bytes_in").GetInt64());
        Assert.Equal(rows.SelectMany(r => r.Outputs).Sum(f => f.Size), usage.GetProperty("bytes_out").GetInt64());
        Assert.True(usage.GetProperty("bytes_out").GetInt64() > 0);
        Assert.Equal(0, usage.GetProperty("wasted").GetProperty("deliveries").GetInt64());
        Assert.Equal(0, usage.GetProperty("harvested_share").GetDouble());
        Assert.Equal("credits", usage.GetProperty("currency").GetString());
        Assert.Equal((cpu * 0.5) + (gbSeconds * 0.25), usage.GetProperty("cost").GetDouble(), 0.002);
        Assert.Equal(0.5, usage.GetProperty("prices").GetProperty("cpu_second").GetDouble());

        var report = System.Text.Encoding.UTF8.GetString(await run.ReadAsync("report.html"));
        Assert.Contains("id=\"usage\"", report, StringComparison.Ordinal);
        Assert.Contains("credits", report, StringComparison.Ordinal);

        // `pipelines status` on this machine's ended run prints run.json's cost line.
        var status = await CliRunner.RunAsync(["status", RunFolder.RunIdFrom(result)], env);
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains($"  cost:    {usage.GetProperty("cost").GetDouble().ToString("0.######", System.Globalization.CultureInfo.InvariantCulture)} credits for 2 deliveries: ", status.Stdout, StringComparison.Ordinal);
    }

    private string Workflow()
    {
        var input = _temp.Combine("input");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.txt"), "a\n");
        File.WriteAllText(Path.Combine(input, "b.txt"), "bb\n");
        return _temp.Write("burn.yaml", $$"""
            version: 1
            name: burn
            input:
              uri: {{input}}
            steps:
              - name: burn
                image: pipelines-samples/pair-check:1
                command: ["sh", "-c", "{{DockerRuntimeTests.BurnScript}}"]
                resources: { cpus: 1, memory: 256Mi, timeout: 5m }
            output:
              uri: {{_temp.Combine("out")}}
            """);
    }

    public void Dispose() => _temp.Dispose();
}
