using System.Text.Json;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Explain;

/// <summary>
/// `pipelines explain` as a user runs it after real runs in the embedded mode (local folders,
/// the real Docker engine and the sample image): the reason each task ran is read back from the
/// run folder's provenance, after the process that ran it has ended.
/// </summary>
[Integration]
public sealed class ExplainEndToEndTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly Dictionary<string, string?> _env;
    private readonly string _input;

    public ExplainEndToEndTests()
    {
        _env = new() { ["PIPELINES_HOME"] = _temp.Combine("home") };
        _input = _temp.Combine("in");
        Directory.CreateDirectory(_input);
        foreach (var f in Directory.EnumerateFiles(Path.Combine(TestEnvironment.SampleFastq, "lane1")).Order(StringComparer.Ordinal).Take(12))
        {
            File.Copy(f, Path.Combine(_input, Path.GetFileName(f)));
        }
    }

    [Fact]
    public async Task Explain_names_why_each_run_ran_no_earlier_run_a_changed_input_env_resources_and_a_missing_output()
    {
        // 12 files, 3 per task: 4 tasks.
        var first = await RunAsync();
        var sum = await ExplainJsonAsync(first);
        Assert.Equal((4, 0, 4), (sum.GetProperty("tasks").GetInt32(), sum.GetProperty("cached").GetInt32(), sum.GetProperty("ran").GetInt32()));
        Assert.Equal("no earlier run", sum.GetProperty("reasons")[0].GetProperty("reason").GetString());

        // One file of task 1 gets the content of another: one task runs, three are cached.
        File.Copy(Path.Combine(_input, "S001_R1.fastq"), Path.Combine(_input, "S002_R2.fastq"), overwrite: true);
        var second = await RunAsync();
        Assert.Contains("(1 succeeded, 3 cached, 0 failed, 0 cancelled)", second.Stdout, StringComparison.Ordinal);
        sum = await ExplainJsonAsync(second);
        Assert.Equal((3, 1), (sum.GetProperty("cached").GetInt32(), sum.GetProperty("ran").GetInt32()));
        Assert.Equal(("input content", 1), Reason(sum, 0));
        var text = await CliRunner.RunAsync(["explain", RunFolder.RunIdFrom(second), "1"], _env);
        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Contains($"differed in 1 component(s):", text.Stdout, StringComparison.Ordinal);
        Assert.Contains("inputs[0] (S002_R2.fastq) sha256 ", text.Stdout, StringComparison.Ordinal);
        var cached = await CliRunner.RunAsync(["explain", RunFolder.RunIdFrom(second), "0"], _env);
        Assert.Contains($"taken from the cache: run {RunFolder.RunIdFrom(first)}", cached.Stdout, StringComparison.Ordinal);

        var env = await RunAsync("steps[0].env.LC_ALL=POSIX");
        Assert.Equal(("steps[0].env.LC_ALL", 4), Reason(await ExplainJsonAsync(env), 0));

        var memory = await RunAsync("steps[0].env.LC_ALL=POSIX", "steps[0].resources.memory=512Mi");
        var task = await ExplainJsonAsync(memory, "2");
        var change = task.GetProperty("ran_because").GetProperty("changes").EnumerateArray().Single();
        Assert.Equal(("steps[0].resources.memory", "268435456", "536870912"), (change.GetProperty("component").GetString(), change.GetProperty("before").GetString(), change.GetProperty("now").GetString()));

        // A kept output of the last run is deleted: the next equal run cannot reuse that task.
        var folder = Path.Combine(_temp.Combine("out"), RunFolder.RunIdFrom(memory), "tasks", task.GetProperty("task_id").GetString()!, "stats", "stats.tsv");
        File.Delete(folder);
        var again = await RunAsync("steps[0].env.LC_ALL=POSIX", "steps[0].resources.memory=512Mi");
        Assert.Contains("(1 succeeded, 3 cached, 0 failed, 0 cancelled)", again.Stdout, StringComparison.Ordinal);
        var missing = (await ExplainJsonAsync(again, task.GetProperty("task_id").GetString()!)).GetProperty("ran_because");
        Assert.Equal("cached-output-missing", missing.GetProperty("reason").GetString());
        Assert.EndsWith("/stats/stats.tsv", missing.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_refuses_an_unknown_run_and_task_by_name()
    {
        var run = await RunAsync();

        var noRun = await CliRunner.RunAsync(["explain", "20000101-000000-000000"], _env);
        Assert.Equal(4, noRun.ExitCode);
        Assert.Contains("no run 20000101-000000-000000 is known here", noRun.Stdout + noRun.Stderr, StringComparison.Ordinal);
        var noTask = await CliRunner.RunAsync(["explain", RunFolder.RunIdFrom(run), "99"], _env);
        Assert.Equal(4, noTask.ExitCode);
        Assert.Contains("has no task '99'", noTask.Stdout + noTask.Stderr, StringComparison.Ordinal);
    }

    private static (string, int) Reason(JsonElement sum, int i) =>
        (sum.GetProperty("reasons")[i].GetProperty("reason").GetString()!, sum.GetProperty("reasons")[i].GetProperty("count").GetInt32());

    private async Task<JsonElement> ExplainJsonAsync(CliRunner.Result run, string? task = null)
    {
        var args = new List<string> { "explain", RunFolder.RunIdFrom(run) };
        if (task is not null)
        {
            args.Add(task);
        }

        args.Add("--json");
        var result = await CliRunner.RunAsync(args, _env);
        Assert.True(result.ExitCode == 0, result.ToString());
        return JsonDocument.Parse(result.Stdout).RootElement;
    }

    private async Task<CliRunner.Result> RunAsync(params string[] sets)
    {
        var args = new List<string> { "run", "workflows/fastq-stats.yaml", "--set", "output.uri=" + _temp.Combine("out"), "--set", "input.uri=" + _input, "--set", "input.batch=3" };
        foreach (var s in sets)
        {
            args.Add("--set");
            args.Add(s);
        }

        var result = await CliRunner.RunAsync(args, _env);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }

    public void Dispose() => _temp.Dispose();
}
