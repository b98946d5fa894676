using System.Globalization;
using System.Security.Cryptography;
using Pipelines.Containers;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// The CLI as a user runs it, in the embedded mode (no PostgreSQL: Hangfire.InMemory, local
/// folders), against the real Docker engine and the sample images.
/// </summary>
[Integration]
public sealed class EmbeddedRunTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly Dictionary<string, string?> _env;

    public EmbeddedRunTests()
    {
        _env = new() { ["PIPELINES_HOME"] = _temp.Combine("home") };
    }

    [Fact]
    public async Task Sample_workflow_gathers_every_file_and_each_row_matches_an_independent_computation()
    {
        var result = await RunAsync("workflows/fastq-stats.yaml");

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("succeeded", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("stats: 200 rows gathered", result.Stdout, StringComparison.Ordinal);
        var run = Folder(result);
        var rows = await run.ResultAsync("stats");
        var files = Directory.EnumerateFiles(TestEnvironment.SampleFastq, "*", SearchOption.AllDirectories).ToList();
        Assert.Equal(files.Count, rows.Count);
        foreach (var row in rows)
        {
            var expected = FastqReference.Compute(Path.Combine(TestEnvironment.SampleFastq, (string)row["file"]!));
            Assert.Equal(expected.Reads, row["reads"]);
            Assert.Equal(expected.Bases, row["bases"]);
            Assert.Equal(expected.Gc, ((double)row["gc"]!).ToString("F6", CultureInfo.InvariantCulture));
            Assert.Equal(expected.MeanQuality, ((double)row["mean_quality"]!).ToString("F4", CultureInfo.InvariantCulture));
        }

        var csv = System.Text.Encoding.UTF8.GetString(await run.ReadAsync("results/stats.csv")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("file,reads,bases,gc,mean_quality,_task_id,_source_file,_part", csv[0]);
        Assert.Equal(201, csv.Length);

        var provenance = await run.ProvenanceAsync();
        Assert.Equal(20, provenance.Count);
        using var docker = new DockerEngine(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint });
        var digest = await docker.Images.ResolveImageAsync("pipelines-samples/fastq-stats:1", CancellationToken.None);
        Assert.All(provenance, p =>
        {
            Assert.Equal("succeeded", p.Status);
            Assert.Equal(0, p.ExitCode);
            Assert.Equal(digest, p.ImageDigest);
            Assert.Equal("fastq-stats", p.Command[0]);
            Assert.Equal(p.Inputs.Select(i => "/in/" + i.Key), p.Command.Skip(3));
        });
        foreach (var input in provenance.SelectMany(p => p.Inputs))
        {
            var bytes = await File.ReadAllBytesAsync(Path.Combine(TestEnvironment.SampleFastq, input.Key));
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), input.Sha256);
        }

        Assert.Equal(files.Count, provenance.SelectMany(p => p.Inputs).Select(i => i.Key).Distinct().Count());
        await run.AssertOutputHashesAsync(provenance);

        using var runJson = await run.RunJsonAsync();
        Assert.Equal("succeeded", runJson.RootElement.GetProperty("status").GetString());
        Assert.Equal(20, runJson.RootElement.GetProperty("counts").GetProperty("succeeded").GetInt32());
        Assert.True(await run.ExistsAsync("workflow.yaml"));
        Assert.True(await run.ExistsAsync("provenance/ro-crate-metadata.json"));
        Assert.True(await run.ExistsAsync($"tasks/{provenance[0].TaskId}/stats.log"));

        var status = await CliRunner.RunAsync(["status", RunFolder.RunIdFrom(result)], _env);
        Assert.Equal(0, status.ExitCode);
        Assert.Contains("succeeded", status.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_second_run_reuses_the_results_of_equal_tasks_as_cached()
    {
        var first = await RunAsync("workflows/fastq-stats.yaml", "input.batch=50");
        var second = await RunAsync("workflows/fastq-stats.yaml", "input.batch=50");

        Assert.Equal(0, first.ExitCode);
        Assert.Equal(0, second.ExitCode);
        Assert.Contains("(0 succeeded, 4 cached, 0 failed, 0 cancelled)", second.Stdout, StringComparison.Ordinal);
        var a = await Folder(first).ResultAsync("stats");
        var b = await Folder(second).ResultAsync("stats");
        Assert.Equal(a.Select(r => string.Join(",", r.Values)), b.Select(r => string.Join(",", r.Values)));
        var provenance = await Folder(second).ProvenanceAsync();
        Assert.All(provenance, p => Assert.Equal("cached", p.Status));
        Assert.All(provenance, p => Assert.Equal(RunFolder.RunIdFrom(first), p.CachedFrom));
        await Folder(second).AssertOutputHashesAsync(provenance);
    }

    [Fact]
    public async Task A_malformed_input_fails_its_task_with_the_algorithms_stderr_and_the_rest_is_gathered()
    {
        var input = _temp.Combine("input");
        foreach (var name in new[] { "lane1/S001_R1.fastq", "lane1/S001_R2.fastq", "lane1/S002_R1.fastq" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(input, name))!);
            File.Copy(Path.Combine(TestEnvironment.SampleFastq, name), Path.Combine(input, name));
        }

        File.Copy(Path.Combine(TestEnvironment.RepoRoot, "sample-data", "invalid", "truncated.fastq"), Path.Combine(input, "lane1", "S003_R1.fastq"));

        var result = await RunAsync("workflows/fastq-stats.yaml", "input.batch=1", "input.uri=" + input);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("(3 succeeded, 0 cached, 1 failed, 0 cancelled)", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("lane1/S003_R1.fastq", result.Stdout, StringComparison.Ordinal);
        var run = Folder(result);
        var rows = await run.ResultAsync("stats");
        Assert.Equal(["lane1/S001_R1.fastq", "lane1/S001_R2.fastq", "lane1/S002_R1.fastq"], rows.Select(r => (string)r["file"]!));

        var provenance = await run.ProvenanceAsync();
        var failed = provenance.Where(p => p.Status == "failed").ToList();
        Assert.Equal(2, failed.Count); // retries: 1 in the workflow: two attempts
        Assert.Equal([1, 2], failed.Select(f => f.Attempt));
        Assert.All(failed, f =>
        {
            Assert.Equal(2, f.ExitCode);
            Assert.Contains("fastq-stats: lane1/S003_R1.fastq:", f.Error, StringComparison.Ordinal);
        });
        var log = System.Text.Encoding.UTF8.GetString(await run.ReadAsync($"tasks/{failed[0].TaskId}/stats.log"));
        Assert.Contains("attempt 1, exited with code 2", log, StringComparison.Ordinal);
        Assert.Contains("attempt 2, exited with code 2", log, StringComparison.Ordinal);
        Assert.Contains("fastq-stats: lane1/S003_R1.fastq:", log, StringComparison.Ordinal);
        using var runJson = await run.RunJsonAsync();
        Assert.Equal("failed", runJson.RootElement.GetProperty("status").GetString());
        Assert.Equal(1, runJson.RootElement.GetProperty("counts").GetProperty("failed").GetInt32());
    }

    [Fact]
    public async Task A_batch_with_a_malformed_input_is_split_so_only_that_input_fails()
    {
        var input = _temp.Combine("input-batch");
        var good = new[] { "lane1/S001_R1.fastq", "lane1/S001_R2.fastq", "lane1/S002_R1.fastq" };
        foreach (var name in good)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(input, name))!);
            File.Copy(Path.Combine(TestEnvironment.SampleFastq, name), Path.Combine(input, name));
        }

        File.Copy(Path.Combine(TestEnvironment.RepoRoot, "sample-data", "invalid", "missing_plus.fastq"), Path.Combine(input, "lane1", "S002_R2.fastq"));

        var result = await RunAsync("workflows/fastq-stats.yaml", "input.batch=10", "input.uri=" + input, "steps[0].retries=0");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("tasks:   5 (3 succeeded, 0 cached, 1 failed, 0 cancelled, 1 split)", result.Stdout, StringComparison.Ordinal);
        var run = Folder(result);
        var rows = await run.ResultAsync("stats");
        Assert.Equal(good, rows.Select(r => (string)r["file"]!));

        var provenance = await run.ProvenanceAsync();
        var batch = provenance.Single(p => p.Inputs.Count == 4);
        Assert.Equal("failed", batch.Status);
        var failed = provenance.Single(p => p.Inputs.Count == 1 && p.Status == "failed");
        Assert.Equal("lane1/S002_R2.fastq", failed.Inputs.Single().Key);
        Assert.Contains("fastq-stats: lane1/S002_R2.fastq:", failed.Error, StringComparison.Ordinal);
        Assert.Equal(3, provenance.Count(p => p.Inputs.Count == 1 && p.Status == "succeeded"));
        await run.AssertOutputHashesAsync(provenance);

        // The split tasks have the ids a plan of batch 1 gives: a later run with batch 1 reuses them.
        var again = await RunAsync("workflows/fastq-stats.yaml", "input.batch=1", "input.uri=" + input, "steps[0].retries=0");
        Assert.Contains("(0 succeeded, 3 cached, 1 failed, 0 cancelled)", again.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_batch_that_times_out_is_not_split_since_each_input_alone_would_time_out_again()
    {
        var input = _temp.Combine("input-slow");
        Directory.CreateDirectory(input);
        foreach (var name in new[] { "a.txt", "b.txt", "c.txt" })
        {
            await File.WriteAllTextAsync(Path.Combine(input, name), name);
        }

        var workflow = _temp.Write("slow.yaml", $"""
            version: 1
            name: slow
            input:
              uri: {input}
              batch: 3
            steps:
              - name: s
                image: pipelines-samples/pair-check:1
                command: ["sh", "-c", "sleep 30"]
                resources: {"{ timeout: 1s }"}
            output:
              uri: {_temp.Combine("out")}
            """);
        var result = await CliRunner.RunAsync(["run", workflow], _env);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("tasks:   1 (0 succeeded, 0 cached, 1 failed, 0 cancelled)", result.Stdout, StringComparison.Ordinal);
        var provenance = await Folder(result).ProvenanceAsync();
        Assert.Contains("timed out and was killed", Assert.Single(provenance).Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task On_error_fail_stops_the_run_and_presents_no_results()
    {
        var input = _temp.Combine("input-fail");
        Directory.CreateDirectory(input);
        File.Copy(Path.Combine(TestEnvironment.RepoRoot, "sample-data", "invalid", "bad_header.fastq"), Path.Combine(input, "a.fastq"));
        for (var i = 0; i < 6; i++)
        {
            File.Copy(Path.Combine(TestEnvironment.SampleFastq, "lane1", $"S00{i + 1}_R1.fastq"), Path.Combine(input, $"b{i}.fastq"));
        }

        var result = await RunAsync("workflows/fastq-stats.yaml", "input.batch=1", "on_error=fail", "input.uri=" + input, "steps[0].retries=0");

        Assert.Equal(1, result.ExitCode);
        var run = Folder(result);
        Assert.False(await run.ExistsAsync("results/stats.parquet"));
        using var runJson = await run.RunJsonAsync();
        Assert.Equal("failed", runJson.RootElement.GetProperty("status").GetString());
        Assert.Contains("on_error is fail", runJson.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        var counts = runJson.RootElement.GetProperty("counts");
        Assert.Equal(1, counts.GetProperty("failed").GetInt32());
        Assert.Equal(7, counts.GetProperty("tasks").GetInt32());
    }

    [Fact]
    public async Task Paired_reads_are_grouped_and_a_second_step_reads_the_first_steps_outputs()
    {
        var result = await RunAsync("workflows/paired-qc.yaml");

        Assert.Equal(0, result.ExitCode);
        var run = Folder(result);
        var pairs = await run.ResultAsync("pairs");
        Assert.Equal(100, pairs.Count);
        foreach (var row in pairs)
        {
            var sample = (string)row["sample"]!;
            var r1 = Directory.EnumerateFiles(TestEnvironment.SampleFastq, sample + "_R1.fastq*", SearchOption.AllDirectories).Single();
            Assert.Equal(FastqReference.Compute(r1).Reads, row["reads_r1"]);
            Assert.Equal(row["reads_r1"], row["reads_r2"]);
            Assert.Equal("yes", row["paired"]);
        }

        Assert.Equal(200, (await run.ResultAsync("stats")).Count);
        var provenance = await run.ProvenanceAsync();
        Assert.Equal(200, provenance.Count);
        Assert.All(provenance.Where(p => p.Step == "pairs"), p => Assert.Equal(2, p.Inputs.Count));
    }

    [Fact]
    public async Task A_samplesheet_makes_one_task_per_row_with_the_sample_placeholder()
    {
        var result = await RunAsync("workflows/samplesheet.yaml");

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("100 task(s) over 200 input file(s)", result.Stdout, StringComparison.Ordinal);
        var provenance = await Folder(result).ProvenanceAsync();
        Assert.Equal(100, provenance.Select(p => p.Outputs.Single().Key.Split('/')[^1]).Distinct().Count());
        Assert.Contains(provenance, p => p.Outputs.Single().Key.EndsWith("/stats/S042.tsv", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_missing_image_is_one_clear_line_and_exit_1_before_anything_runs()
    {
        var output = _temp.Combine("out-missing");
        var result = await CliRunner.RunAsync(["run", "workflows/fastq-stats.yaml", "--set", "output.uri=" + output, "--set", "steps[0].image=pipelines-samples/absent:0"], _env);

        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"error: image 'pipelines-samples/absent:0' is not on the Docker engine at {TestEnvironment.DockerEndpoint}; build or load it there first (`docker images` lists what is there)", result.Stderr.Trim());
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task Validate_accepts_the_samples_and_reports_every_problem_with_its_line()
    {
        foreach (var file in Directory.GetFiles(Path.Combine(TestEnvironment.RepoRoot, "workflows"), "*.yaml"))
        {
            var ok = await CliRunner.RunAsync(["validate", file], _env);
            Assert.True(ok.ExitCode == 0, ok.ToString());
        }

        var bad = _temp.Write("bad.yaml", """
            version: 1
            name: Bad_Name
            input:
              uri: /data
              batch: 0
            steps:
              - name: s
                image: x:1
                command: ["run", "{nope}"]
                resources: { memory: 12XB }
            output:
              uri: /out
            """);
        var result = await CliRunner.RunAsync(["validate", bad], _env);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("line 2, column 7: name: 'Bad_Name' is not a workflow name", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("line 5, column 10: input.batch: is 0", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("line 9, column 22: steps[0].command[1]: uses the unknown placeholder {nope}", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("line 10, column 26: steps[0].resources.memory: '12XB' is not a size", result.Stderr, StringComparison.Ordinal);

        var run = await CliRunner.RunAsync(["run", bad], _env);
        Assert.Equal(2, run.ExitCode);
    }

    private Task<CliRunner.Result> RunAsync(string workflow, params string[] sets)
    {
        var args = new List<string> { "run", workflow, "--set", "output.uri=" + _temp.Combine("out") };
        foreach (var s in sets)
        {
            args.Add("--set");
            args.Add(s);
        }

        return CliRunner.RunAsync(args, _env);
    }

    private RunFolder Folder(CliRunner.Result result)
    {
        Assert.True(result.Stdout.Contains("output: ", StringComparison.Ordinal), result.ToString());
        var factory = new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1"));
        return new RunFolder(factory.Open(_temp.Combine("out")).Child(RunFolder.RunIdFrom(result)));
    }

    public void Dispose() => _temp.Dispose();
}
