using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Amazon.S3.Model;
using Pipelines.Storage;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Lineage;

/// <summary>`pipelines lineage` as a user runs it, on real runs: a task output, a results row (by number and by key), a copied run folder, an object in S3.</summary>
[Collection(LineageCollection.Name)]
[Integration]
public sealed class LineageTests(LineageRunFixture fixture)
{
    [Fact]
    public async Task Lineage_of_a_task_output_names_its_task_step_image_command_worker_times_and_every_input_with_size_and_hash()
    {
        var provenance = await fixture.Run.ProvenanceAsync();
        var row = provenance[7];
        var output = row.Outputs.Single();

        using var answer = await LineageJsonAsync(fixture.Folder + output.Key);

        var root = answer.RootElement;
        Assert.Equal("task output", root.GetProperty("kind").GetString());
        Assert.Equal(fixture.RunId, root.GetProperty("run").GetProperty("run_id").GetString());
        var step = root.GetProperty("steps")[0];
        Assert.Equal(row.TaskId, step.GetProperty("task_id").GetString());
        Assert.Equal(row.TaskIndex, step.GetProperty("task_index").GetInt32());
        Assert.Equal("stats", step.GetProperty("step").GetString());
        Assert.Equal("pipelines-samples/fastq-stats:1", step.GetProperty("image").GetString());
        Assert.Equal(row.ImageDigest, step.GetProperty("image_digest").GetString());
        Assert.StartsWith("sha256:", row.ImageDigest, StringComparison.Ordinal);
        Assert.Equal(row.Command, step.GetProperty("command").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal(row.Worker, step.GetProperty("worker").GetString());
        Assert.Equal(row.StartedAt, step.GetProperty("started_at").GetDateTime(), TimeSpan.FromMilliseconds(1));
        Assert.True(step.GetProperty("finished_at").GetDateTime() >= step.GetProperty("started_at").GetDateTime());
        var inputs = step.GetProperty("inputs").EnumerateArray().ToList();
        Assert.Equal(10, inputs.Count);
        foreach (var input in inputs)
        {
            // Each input's size and hash are those of the file on disk, computed here independently.
            var bytes = await File.ReadAllBytesAsync(Path.Combine(TestEnvironment.SampleFastq, input.GetProperty("key").GetString()!));
            Assert.Equal(bytes.Length, input.GetProperty("size").GetInt64());
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), input.GetProperty("sha256").GetString());
        }

        var text = await CliRunner.RunAsync(["lineage", fixture.Folder + output.Key], fixture.Env);
        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Contains($"produced by task {row.TaskIndex} ({row.TaskId}), step stats, attempt 1: succeeded", text.Stdout, StringComparison.Ordinal);
        Assert.Contains("command:  " + string.Join(' ', row.Command), text.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lineage_of_a_results_row_names_the_task_and_the_input_file_that_produced_it_by_number_and_by_key()
    {
        var rows = await fixture.Run.ResultAsync("stats");
        var provenance = await fixture.Run.ProvenanceAsync();
        foreach (var n in new[] { 1, 37, 200 })
        {
            var expected = rows[n - 1];
            var file = (string)expected["file"]!;
            var task = provenance.Single(p => p.Inputs.Any(i => i.Key == file));
            Assert.Equal(task.TaskId, expected["_task_id"]);
            Assert.Equal(file, expected["_source_file"]);

            using var answer = await LineageJsonAsync(fixture.Folder + "results/stats.parquet", "--row", n.ToString(CultureInfo.InvariantCulture));

            var row = answer.RootElement.GetProperty("row");
            Assert.Equal(n, row.GetProperty("number").GetInt64());
            Assert.Equal(200, row.GetProperty("rows").GetInt64());
            Assert.Equal(task.TaskId, row.GetProperty("task_id").GetString());
            Assert.Equal(file, row.GetProperty("source_file").GetProperty("key").GetString());
            Assert.Equal(task.Inputs.Single(i => i.Key == file).Sha256, row.GetProperty("source_file").GetProperty("sha256").GetString());
            Assert.Equal($"tasks/{task.TaskId}/stats/stats.tsv", row.GetProperty("part").GetString());
            Assert.Equal(task.TaskId, answer.RootElement.GetProperty("steps")[0].GetProperty("task_id").GetString());
        }

        var byKey = (string)rows[41]["file"]!;
        using (var csv = await LineageJsonAsync(fixture.Folder + "results/stats.csv", "--key", byKey))
        {
            Assert.Equal(42, csv.RootElement.GetProperty("row").GetProperty("number").GetInt64());
            Assert.Equal(byKey, csv.RootElement.GetProperty("row").GetProperty("source_file").GetProperty("key").GetString());
        }

        var missing = await CliRunner.RunAsync(["lineage", fixture.Folder + "results/stats.parquet", "--row", "201"], fixture.Env);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("results/stats.parquet has 200 rows; there is no row 201", missing.Stderr, StringComparison.Ordinal);
        var noKey = await CliRunner.RunAsync(["lineage", fixture.Folder + "results/stats.parquet", "--key", "lane9/nothing.fastq"], fixture.Env);
        Assert.Equal(1, noKey.ExitCode);
        Assert.Contains("no row of results/stats.parquet has file = 'lane9/nothing.fastq'", noKey.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_run_folder_copied_elsewhere_still_answers_and_a_file_outside_any_run_folder_is_refused_by_name()
    {
        using var copy = new TempFolder();
        var target = copy.Combine("moved", "results-of-" + fixture.RunId);
        CopyFolder(fixture.Folder, target);
        var rows = await fixture.Run.ResultAsync("stats");

        using var answer = await LineageJsonAsync(Path.Combine(target, "results", "stats.parquet"), "--row", "5");

        Assert.Equal(fixture.RunId, answer.RootElement.GetProperty("run").GetProperty("run_id").GetString());
        Assert.Equal(target + "/", answer.RootElement.GetProperty("run").GetProperty("folder").GetString());
        Assert.Equal(rows[4]["_task_id"], answer.RootElement.GetProperty("row").GetProperty("task_id").GetString());
        Assert.Equal(rows[4]["file"], answer.RootElement.GetProperty("row").GetProperty("source_file").GetProperty("key").GetString());

        var stray = copy.Write("elsewhere/stats.tsv", "x\n");
        var refused = await CliRunner.RunAsync(["lineage", stray], fixture.Env);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains($"{stray} is not in a run folder", refused.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lineage_of_an_object_in_S3_answers_from_the_run_folder_in_the_bucket()
    {
        using var stores = new ObjectStoreFactory(TestEnvironment.S3);
        var bucket = await TestEnvironment.NewBucketAsync(stores.S3Client);
        var run = await CliRunner.RunAsync(["run", "workflows/fastq-stats.yaml", "--set", "input.batch=50", "--set", $"output.uri=s3://{bucket}/results/"], fixture.Env);
        Assert.True(run.ExitCode == 0, run.ToString());
        var runId = RunFolder.RunIdFrom(run);
        var folder = new RunFolder(stores.Open($"s3://{bucket}/results/{runId}/"));
        var provenance = await folder.ProvenanceAsync();
        var output = provenance[2].Outputs.Single();
        var listed = await stores.S3Client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = bucket, Key = $"results/{runId}/{output.Key}" });
        Assert.Equal(output.Size, listed.ContentLength);

        using var answer = await LineageJsonAsync($"s3://{bucket}/results/{runId}/{output.Key}");
        Assert.Equal(runId, answer.RootElement.GetProperty("run").GetProperty("run_id").GetString());
        Assert.Equal(provenance[2].TaskId, answer.RootElement.GetProperty("steps")[0].GetProperty("task_id").GetString());
        Assert.Equal(50, answer.RootElement.GetProperty("steps")[0].GetProperty("inputs").GetArrayLength());

        var rows = await folder.ResultAsync("stats");
        using var row = await LineageJsonAsync($"s3://{bucket}/results/{runId}/results/stats.parquet", "--key", (string)rows[150]["file"]!);
        Assert.Equal(151, row.RootElement.GetProperty("row").GetProperty("number").GetInt64());
        Assert.Equal(rows[150]["_task_id"], row.RootElement.GetProperty("row").GetProperty("task_id").GetString());
    }

    private async Task<JsonDocument> LineageJsonAsync(string uri, params string[] more)
    {
        var result = await CliRunner.RunAsync(["lineage", uri, "--json", .. more], fixture.Env);
        Assert.True(result.ExitCode == 0, result.ToString());
        return JsonDocument.Parse(result.Stdout);
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}
