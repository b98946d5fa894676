using System.Globalization;
using System.Text;
using System.Text.Json;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// `pipelines run --candidate STEP=IMAGE` as a user runs it (embedded mode, local folders, the
/// real Docker engine): a sample of the tasks run again with the candidate image into canary/,
/// compared with the run's own, and nothing of the candidate in the run's results or cache.
/// </summary>
[Integration]
public sealed class BatchCanaryTests(BatchCanaryImages images) : IClassFixture<BatchCanaryImages>, IDisposable
{
    private static readonly (string Key, int Lines)[] Inputs = BatchCanaryImages.Inputs;

    private readonly TempFolder _temp = new();

    [Fact]
    public async Task An_identical_candidate_image_is_reported_equal_and_exits_0()
    {
        var result = await RunAsync(images.Current, "--candidate", "score=" + images.Retagged, "--sample", "2");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("canary of step score: equal", result.Stdout, StringComparison.Ordinal);
        using var diff = await DiffAsync(result);
        var root = diff.RootElement;
        Assert.Equal("pipelines.canary/1", root.GetProperty("schema").GetString());
        Assert.Equal("equal", root.GetProperty("verdict").GetString());
        Assert.Equal(2, root.GetProperty("tasks_sampled").GetInt32());
        Assert.Equal(3, root.GetProperty("tasks_in_run").GetInt32());
        Assert.Equal(2, root.GetProperty("tasks").GetArrayLength());
        Assert.All(root.GetProperty("tasks").EnumerateArray().SelectMany(t => t.GetProperty("files").EnumerateArray()), f => Assert.Equal("equal", f.GetProperty("status").GetString()));
        var table = root.GetProperty("tables")[0];
        Assert.Equal(4, table.GetProperty("rows_compared").GetInt64());
        Assert.Equal(0, table.GetProperty("cells_differ").GetInt64());

        // The candidate ran (an identical image has the same task ids, and still is not taken from the cache).
        var candidate = new RunFolder(Folder(result).Location.Child("canary"));
        var provenance = await candidate.ProvenanceAsync();
        Assert.Equal(2, provenance.Count);
        Assert.All(provenance, p => Assert.Equal("succeeded", p.Status));
        Assert.All(provenance, p => Assert.Contains("canary-candidate", p.RanBecause, StringComparison.Ordinal));
        Assert.Equal(4, (await candidate.ResultAsync("scores")).Count);

        // The same sample on every run of the same input.
        var again = await RunAsync(images.Current, "--candidate", "score=" + images.Retagged, "--sample", "2");
        Assert.True(again.ExitCode == 0, again.ToString());
        using var diff2 = await DiffAsync(again);
        Assert.Equal(
            root.GetProperty("tasks").EnumerateArray().Select(t => t.GetProperty("current").GetProperty("index").GetInt32()),
            diff2.RootElement.GetProperty("tasks").EnumerateArray().Select(t => t.GetProperty("current").GetProperty("index").GetInt32()));
    }

    [Fact]
    public async Task A_planted_difference_in_one_cell_is_reported_alone_and_exits_3_and_nothing_of_the_candidate_reaches_the_run_or_its_cache()
    {
        var result = await RunAsync(images.Current, "--candidate", "score=" + images.Planted, "--sample", "100%");

        // A difference is a finding about the candidate, not a failure: 3, apart from a failed task's 1.
        Assert.True(result.ExitCode == 3, result.ToString());
        Assert.Contains("canary of step score: different", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"column score: current '{Score(8)}', candidate '{Score(8, 0.5)}'", result.Stdout, StringComparison.Ordinal);
        using var diff = await DiffAsync(result);
        var root = diff.RootElement;
        Assert.Equal("different", root.GetProperty("verdict").GetString());
        Assert.Equal(3, root.GetProperty("tasks_sampled").GetInt32());
        var table = root.GetProperty("tables")[0];
        Assert.Equal("scores", table.GetProperty("name").GetString());
        Assert.Equal(6, table.GetProperty("rows_compared").GetInt64());
        Assert.Equal(1, table.GetProperty("cells_differ").GetInt64());
        Assert.Equal(0, table.GetProperty("rows_only_current").GetInt64());
        Assert.Equal(0, table.GetProperty("rows_only_candidate").GetInt64());
        var cell = Assert.Single(table.GetProperty("cells").EnumerateArray());
        Assert.Equal("score", cell.GetProperty("column").GetString());
        Assert.Equal(BatchCanaryImages.PlantedFile, cell.GetProperty("source_file").GetString());
        Assert.Equal(2, cell.GetProperty("row").GetInt64());
        Assert.Equal(Score(8), cell.GetProperty("current").GetString());
        Assert.Equal(Score(8, 0.5), cell.GetProperty("candidate").GetString());
        var tasks = root.GetProperty("tasks").EnumerateArray().ToList();
        Assert.Equal(["equal", "different", "equal"], tasks.Select(t => t.GetProperty("verdict").GetString()));
        var summary = Encoding.UTF8.GetString(await Folder(result).ReadAsync("canary/summary.txt"));
        Assert.Contains("1 cell(s) differ", summary, StringComparison.Ordinal);

        // The run's own results are the current image's, and only its tasks are in the cache.
        var run = Folder(result);
        var runId = RunFolder.RunIdFrom(result);
        var rows = await run.ResultAsync("scores");
        Assert.Equal(Inputs.Select(i => Score(i.Lines)), rows.Select(r => ((double)r["score"]!).ToString("F12", CultureInfo.InvariantCulture)));
        var ownTasks = (await run.ProvenanceAsync()).Select(p => p.TaskId).ToHashSet();
        var candidateTasks = (await new RunFolder(run.Location.Child("canary")).ProvenanceAsync()).Select(p => p.TaskId).ToHashSet();
        Assert.Empty(ownTasks.Intersect(candidateTasks));
        var cache = _temp.Combine("out", ".cache");
        var manifests = Directory.GetFiles(cache, "*.json").ToList();
        Assert.Equal(ownTasks.Order(), manifests.Select(m => Path.GetFileNameWithoutExtension(m)).Order());
        Assert.All(manifests, m => Assert.Equal(runId, JsonDocument.Parse(File.ReadAllText(m)).RootElement.GetProperty("RunId").GetString()));
        Assert.All(Directory.GetFiles(Path.Combine(cache, "units")), u => Assert.Contains(runId, File.ReadAllText(u), StringComparison.Ordinal));

        // A run without a candidate takes every task from the cache, with the same results.
        var rerun = await RunAsync(images.Current);
        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        Assert.Contains("(0 succeeded, 3 cached, 0 failed, 0 cancelled)", rerun.Stdout, StringComparison.Ordinal);
        var rerunRows = await Folder(rerun).ResultAsync("scores");
        Assert.Equal(rows.Select(r => $"{r["file"]} {r["lines"]} {r["score"]}"), rerunRows.Select(r => $"{r["file"]} {r["lines"]} {r["score"]}"));
        Assert.All(await Folder(rerun).ProvenanceAsync(), p => Assert.Equal(runId, p.CachedFrom));
        Assert.False(await Folder(rerun).ExistsAsync("canary/diff.json"));
    }

    [Fact]
    public async Task A_numeric_difference_below_the_tolerance_is_equal_and_above_a_tighter_one_is_not()
    {
        var result = await RunAsync(images.Current, "--candidate", "score=" + images.Nudged, "--sample", "100%");

        Assert.True(result.ExitCode == 0, result.ToString());
        using var diff = await DiffAsync(result);
        var root = diff.RootElement;
        Assert.Equal("equal", root.GetProperty("verdict").GetString());
        Assert.Equal(1e-9, root.GetProperty("tolerance").GetDouble());

        // The bytes differ (the nudge is visible in the file), the cells do not beyond 1e-9.
        var files = root.GetProperty("tasks").EnumerateArray().SelectMany(t => t.GetProperty("files").EnumerateArray()).ToList();
        Assert.Equal(3, files.Count);
        Assert.All(files, f => Assert.Equal("different", f.GetProperty("status").GetString()));
        Assert.All(files, f => Assert.Equal("scores", f.GetProperty("table").GetString()));

        var strict = await RunAsync(images.Current, "--candidate", "score=" + images.Nudged, "--sample", "100%", "--tolerance", "1e-13");
        Assert.True(strict.ExitCode == 3, strict.ToString());
        using var strictDiff = await DiffAsync(strict);
        Assert.Equal(6, strictDiff.RootElement.GetProperty("tables")[0].GetProperty("cells_differ").GetInt64());
    }

    [Fact]
    public async Task A_candidate_that_fails_says_its_exit_code_and_last_lines_and_its_progress_is_labelled()
    {
        var result = await RunAsync(images.Current, "--candidate", "score=" + images.Broken, "--sample", "1");

        // The candidate's failure leaves nothing compared: a failure of the canary (1), not a difference.
        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains("canary of step score: incomplete", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("the candidate task ended split: step 'score' exited with code 3 (split into 2 task(s): 2 failed", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("  candidate exit code: 3\n", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("  candidate output (stdout and stderr) ended with:\n", result.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"\n    \| cannot score [a-c]/[a-z]+\.txt: the candidate is broken\n", result.Stdout);
        var summary = Encoding.UTF8.GetString(await Folder(result).ReadAsync("canary/summary.txt"));
        Assert.Contains("  candidate exit code: 3\n", summary, StringComparison.Ordinal);
        using var diff = await DiffAsync(result);
        var failure = diff.RootElement.GetProperty("tasks")[0].GetProperty("failure");
        Assert.Equal(("candidate", "split", 3), (failure.GetProperty("side").GetString(), failure.GetProperty("state").GetString(), failure.GetProperty("exit_code").GetInt64()));
        Assert.Contains(failure.GetProperty("output_tail").EnumerateArray(), l => l.GetString()!.EndsWith(": the candidate is broken", StringComparison.Ordinal));

        // After the run's own summary, any progress line is the candidate's, and says so.
        var runId = RunFolder.RunIdFrom(result);
        var after = result.Stdout[result.Stdout.IndexOf($"run {runId} succeeded in ", StringComparison.Ordinal)..];
        Assert.All(after.Split('\n').Where(l => l.Contains("tasks ended", StringComparison.Ordinal)), l => Assert.StartsWith("canary: ", l, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--candidate", "nosuch=busybox", "names step 'nosuch', which is not a step of workflow canary-test (steps: score)")]
    [InlineData("--sample", "0%", "--sample 0% must be more than 0% and at most 100%")]
    [InlineData("--sample", "150%", "--sample 150% must be more than 0% and at most 100%")]
    [InlineData("--sample", "0", "--sample 0 must be at least 1 task")]
    [InlineData("--candidate", "score", "--candidate 'score' must be STEP=IMAGE")]
    public async Task Bad_canary_flags_are_refused_with_what_is_wrong(string flag, string value, string expected)
    {
        string[] args = flag == "--candidate" ? [flag, value] : ["--candidate", "score=" + images.Retagged, flag, value];
        var result = await RunAsync(images.Current, args);

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_temp.Combine("out")) && Directory.EnumerateFileSystemEntries(_temp.Combine("out")).Any(), "nothing is written for a refused canary");
    }

    [Fact]
    public async Task A_sample_without_a_candidate_is_refused()
    {
        var result = await RunAsync(images.Current, "--sample", "5%");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("--sample needs --candidate STEP=IMAGE", result.Stderr, StringComparison.Ordinal);
    }

    private static string Score(int lines, double plus = 0) => (lines / 7.0 + plus).ToString("F12", CultureInfo.InvariantCulture);

    private async Task<CliRunner.Result> RunAsync(string image, params string[] flags)
    {
        var input = _temp.Combine("input");
        foreach (var (key, lines) in Inputs)
        {
            var path = Path.Combine(input, key);
            if (!File.Exists(path))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                await File.WriteAllTextAsync(path, BatchCanaryImages.Content(lines));
            }
        }

        var workflow = _temp.Write("canary.yaml", BatchCanaryImages.Workflow(image, input, _temp.Combine("out")));
        return await CliRunner.RunAsync(["run", workflow, "--local-workers", "2", .. flags], new Dictionary<string, string?> { ["PIPELINES_HOME"] = _temp.Combine("home") });
    }

    private RunFolder Folder(CliRunner.Result result)
    {
        Assert.True(result.Stdout.Contains("output: ", StringComparison.Ordinal), result.ToString());
        var factory = new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1"));
        return new RunFolder(factory.Open(_temp.Combine("out")).Child(RunFolder.RunIdFrom(result)));
    }

    private async Task<JsonDocument> DiffAsync(CliRunner.Result result) => JsonDocument.Parse(await Folder(result).ReadAsync("canary/diff.json"));

    public void Dispose() => _temp.Dispose();
}
