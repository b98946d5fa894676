using System.Diagnostics;
using System.Globalization;
using Pipelines.Tests.Support;
using Xunit.Abstractions;

namespace Pipelines.Tests.Algorithms;

/// <summary>
/// Push once, run anywhere: a worker process whose Docker engine lacks a pushed image loads it
/// from the algorithm store (Swift) through the engine API, once for many tasks waiting for it,
/// and the load shows in the step's log, in each attempt's provenance (image_load,
/// image_load_seconds), in the report, in the catalog's loads and on the dashboard.
/// </summary>
[Integration]
public sealed class AlgorithmLoadTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly TempFolder _temp = new();
    private readonly List<Process> _processes = [];
    private AlgorithmFixture _f = null!;

    public async Task InitializeAsync() => _f = await AlgorithmFixture.CreateAsync();

    public async Task DisposeAsync()
    {
        foreach (var p in _processes)
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
            }

            p.Dispose();
        }

        await _f.DisposeAsync();
        _temp.Dispose();
    }

    [Fact]
    public async Task A_worker_whose_engine_lacks_the_image_loads_it_from_the_store_once_for_many_waiting_tasks()
    {
        var image = await _f.NewImageAsync();
        var pushed = await _f.Service().PushLocalImageAsync("sizes", "1", image, null, "tester", CancellationToken.None);
        var digest = pushed.Version.Digest;

        // The worker's engine has no such image now (only this test's own image is removed).
        await _f.RemoveImageAsync(image);
        Assert.False(await _f.Docker.Images.HasImageAsync(digest, CancellationToken.None));

        var input = _temp.Combine("in");
        Directory.CreateDirectory(input);
        foreach (var f in Directory.GetFiles(Path.Combine(TestEnvironment.SampleFastq, "lane1")).Order(StringComparer.Ordinal).Take(8))
        {
            File.Copy(f, Path.Combine(input, Path.GetFileName(f)));
        }

        var workflow = _temp.Write("sizes.yaml", $$"""
            version: 1
            name: sizes
            input:
              uri: {{input}}
            steps:
              - name: size
                image: algorithm://sizes@stable
                command: ["sh", "-c", "busybox wc -c < {input} > /out/size.txt"]
                outputs: ["size.txt"]
            gather:
              - name: sizes
                from: size/size.txt
                header: false
                columns: [bytes]
            output:
              uri: {{_temp.Combine("out")}}
            """);
        var env = new Dictionary<string, string?>
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = _f.Schema,
            ["PIPELINES_Hangfire__Schema"] = _f.Schema + "_hangfire",
            ["PIPELINES_Algorithms__Store"] = _f.StoreUri,
            ["PIPELINES_Worker__Scratch"] = _temp.Combine("scratch"),
            ["PIPELINES_HOME"] = _temp.Combine("home"),
        };

        // The run is queued before the worker starts, so that all 8 tasks wait for the image at once.
        var run = CliRunner.Start(["run", workflow, "--local-workers", "0"], env);
        _processes.Add(run);
        var worker = CliRunner.Start(["worker", "--concurrency", "4"], env);
        _processes.Add(worker);
        using (var limit = new CancellationTokenSource(TimeSpan.FromMinutes(4)))
        {
            await run.WaitForExitAsync(limit.Token);
        }

        var stdout = await run.StandardOutput.ReadToEndAsync();
        Assert.True(run.ExitCode == 0, stdout + await run.StandardError.ReadToEndAsync());
        Assert.Contains("8 succeeded", stdout, StringComparison.Ordinal);

        // One load on this worker, recorded with its time, for 8 tasks; the engine has the image by its digest again.
        var loads = await _f.Catalog.LoadsAsync(digest, 10, CancellationToken.None);
        var load = Assert.Single(loads);
        Assert.EndsWith(":" + worker.Id.ToString(CultureInfo.InvariantCulture), load.Worker, StringComparison.Ordinal);
        Assert.Equal(pushed.Version.SizeBytes, load.Bytes);
        output.WriteLine($"loaded {load.Bytes} bytes in {load.Seconds:0.00} s");
        Assert.True(await _f.Docker.Images.HasImageAsync(digest, CancellationToken.None));

        // The step logs say so: the task that loaded it, and those that waited for that load.
        var logs = Directory.GetFiles(_temp.Combine("out"), "size.log", SearchOption.AllDirectories).Select(File.ReadAllText).ToList();
        Assert.Equal(8, logs.Count);
        Assert.Single(logs, l => l.Contains("loaded from the algorithm store in", StringComparison.Ordinal));
        Assert.All(logs.Where(l => l.Contains("[pipelines: image", StringComparison.Ordinal)), l => Assert.Contains(digest, l, StringComparison.Ordinal));

        // The provenance of each attempt says what it spent on the image: the loader its load (the
        // very seconds the catalog recorded), a task that came meanwhile its wait, the rest nothing.
        var parquet = Assert.Single(Directory.GetFiles(_temp.Combine("out"), "tasks.parquet", SearchOption.AllDirectories));
        var rows = await ParquetTables.ProvenanceAsync(await File.ReadAllBytesAsync(parquet));
        Assert.Equal(8, rows.Count);
        var loaded = Assert.Single(rows, r => r.ImageLoad == "loaded from the algorithm store");
        Assert.Equal(load.Seconds, loaded.ImageLoadSeconds!.Value, 6);
        Assert.True(loaded.ImageLoadSeconds > 0);
        var waited = rows.Where(r => r.ImageLoad == "waited for this worker's load of it from the algorithm store").ToList();
        Assert.All(waited, r => Assert.InRange(r.ImageLoadSeconds!.Value, 0, (r.FinishedAt - r.StartedAt).TotalSeconds));

        // Four at a time: the loader and at most three others began before the image was there; every later task found it.
        var present = rows.Where(r => r.ImageLoad is null).ToList();
        Assert.InRange(waited.Count, 0, 3);
        Assert.Equal(8 - 1 - waited.Count, present.Count);
        Assert.All(present, r => Assert.Null(r.ImageLoadSeconds));
        output.WriteLine($"loader {loaded.ImageLoadSeconds:0.000} s; waits {string.Join(", ", waited.Select(w => w.ImageLoadSeconds!.Value.ToString("0.000", CultureInfo.InvariantCulture)))}");

        // `pipelines lineage` of the loader's output says so too.
        var runFolder = Path.GetDirectoryName(Path.GetDirectoryName(parquet))!;
        var lineage = await CliRunner.RunAsync(["lineage", Path.Combine(runFolder, loaded.Outputs.Single().Key)], new Dictionary<string, string?>());
        Assert.True(lineage.ExitCode == 0, lineage.ToString());
        Assert.Contains($"  image load: not on the worker's engine: loaded from the algorithm store, {load.Seconds.ToString("0.00", CultureInfo.InvariantCulture)} s", lineage.Stdout, StringComparison.Ordinal);

        // The run's report lists them.
        var report = await File.ReadAllTextAsync(Path.Combine(runFolder, "report.html"));
        Assert.Contains($"Image loads: {1 + waited.Count} step attempt(s) waited for their image", report, StringComparison.Ordinal);
        Assert.Contains("<td>loaded from the algorithm store</td>", report, StringComparison.Ordinal);

        // The dashboard's Algorithms page: the version with its digest and channel, and the load on this worker.
        await using (var server = await ServerProcess.StartAsync(new Dictionary<string, string?>(env) { ["PIPELINES_Server__Roles"] = "api,dashboard" }))
        {
            using var http = server.Client();
            using var page = await http.GetAsync("/hangfire/algorithms");
            var html = await page.Content.ReadAsStringAsync();
            Assert.Equal(System.Net.HttpStatusCode.OK, page.StatusCode);
            var version = Row(html, "data-algorithm=\"sizes\" data-version=\"1\"");
            Assert.Contains($"<code>{digest}</code>", version, StringComparison.Ordinal);
            Assert.Contains("label-success\">stable</span>", version, StringComparison.Ordinal);
            var shown = Row(html, $"data-digest=\"{digest}\" data-worker=\"{load.Worker}\"");
            Assert.Contains("<code>sizes@1</code>", shown, StringComparison.Ordinal);
            Assert.Contains($"<td class=\"seconds\">{load.Seconds.ToString("0.00", CultureInfo.InvariantCulture)}</td>", shown, StringComparison.Ordinal);
            Assert.Contains($"<td class=\"bytes\">{load.Bytes} (", shown, StringComparison.Ordinal);
            Assert.Contains(_f.Bucket, shown, StringComparison.Ordinal);

            // The run's page: each task's row says what its attempt spent on the image, and nothing for those that found it.
            var runPage = await http.GetStringAsync($"/hangfire/runs/{loaded.RunId}");
            var cells = System.Text.RegularExpressions.Regex.Matches(runPage, "<td class=\"image-load\">(.*?)</td>").Select(m => m.Groups[1].Value).ToList();
            Assert.Equal(8, cells.Count);
            Assert.Single(cells, c => c.Contains($"loaded from the algorithm store, {loaded.ImageLoadSeconds!.Value.ToString("0.00", CultureInfo.InvariantCulture)} s", StringComparison.Ordinal));
            Assert.Equal(waited.Count, cells.Count(c => c.Contains("waited for this worker", StringComparison.Ordinal)));
            Assert.Equal(present.Count, cells.Count(c => c.Length == 0));
        }

        await _f.RemoveImageAsync(digest);
    }

    /// <summary>The table row of a page that carries <paramref name="marker"/>; fails when there is none.</summary>
    private static string Row(string html, string marker)
    {
        var at = html.IndexOf(marker, StringComparison.Ordinal);
        Assert.True(at >= 0, $"no row with {marker} in the page");
        var row = html[at..];
        return row[..row.IndexOf("</tr>", StringComparison.Ordinal)];
    }
}
