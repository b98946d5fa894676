using System.Diagnostics;
using System.Text.Json;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// The everyday verbs on this machine's embedded runs, as a user types them (real CLI processes,
/// the real Docker engine): runs, status and logs with and without --json, cancel of a run that
/// another process is running, --version, and the exit codes they end with.
/// </summary>
[Integration]
public sealed class EmbeddedRunVerbsTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly Dictionary<string, string?> _env;

    public EmbeddedRunVerbsTests()
    {
        _env = new() { ["PIPELINES_HOME"] = _temp.Combine("home") };
    }

    [Fact]
    public async Task Runs_status_and_logs_read_an_embedded_run_as_text_and_as_json()
    {
        var result = await CliRunner.RunAsync(["run", "workflows/fastq-stats.yaml", "--set", "output.uri=" + _temp.Combine("out"), "--set", "input.batch=50"], _env);
        Assert.True(result.ExitCode == 0, result.ToString());
        var runId = RunFolder.RunIdFrom(result);

        var runs = await Cli("runs");
        Assert.Matches($@"\n\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s+\S+\s+{runId}\s+fastq-stats\s+succeeded\s+4/4 \(0 failed\)", "\n" + runs.Stdout);
        var json = JsonDocument.Parse((await Cli("runs", "--workflow", "fastq-stats", "--since", "1h", "--json")).Stdout).RootElement;
        Assert.Equal("pipelines.runs/1", json.GetProperty("schema").GetString());
        Assert.Equal(1, json.GetProperty("total").GetInt32());
        var listed = json.GetProperty("runs")[0];
        Assert.Equal((runId, "succeeded", 4), (listed.GetProperty("run_id").GetString(), listed.GetProperty("state").GetString(), listed.GetProperty("counts").GetProperty("succeeded").GetInt32()));
        Assert.Contains("no runs in", (await Cli("runs", "--state", "failed")).Stdout, StringComparison.Ordinal);
        Assert.Equal(0, JsonDocument.Parse((await Cli("runs", "--since", "2099-01-01", "--json")).Stdout).RootElement.GetProperty("total").GetInt32());
        var badState = await Cli("runs", "--state", "finished");
        Assert.True(badState.ExitCode == 2, badState.ToString());
        Assert.Contains("state 'finished' is not one of running, gathering, succeeded, failed, cancelled", badState.Stderr, StringComparison.Ordinal);

        var statusText = (await Cli("status", runId, "--json")).Stdout;
        Assert.Matches("\"created_at\": \"[0-9T:.-]+\\+00:00\"", statusText);
        var status = JsonDocument.Parse(statusText).RootElement;
        Assert.Equal("pipelines.run/1", status.GetProperty("schema").GetString());
        Assert.Equal(("fastq-stats", "succeeded"), (status.GetProperty("workflow").GetString(), status.GetProperty("state").GetString()));
        Assert.Equal(200, status.GetProperty("results").GetProperty("stats").GetProperty("rows").GetInt64());
        Assert.Equal(0, status.GetProperty("counts").GetProperty("held").GetInt32());

        // Every task's log under a header, in task order; one task's alone; a task that is not there is 4.
        var logs = await Cli("logs", runId);
        Assert.True(logs.ExitCode == 0, logs.ToString());
        var headers = logs.Stdout.Split('\n').Where(l => l.StartsWith("==> task ", StringComparison.Ordinal)).ToList();
        Assert.Equal(4, headers.Count);
        Assert.All(headers.Select((h, i) => (h, i)), x => Assert.Matches($@"^==> task {x.i} \([0-9a-f]+\) step stats: succeeded <==$", x.h));
        Assert.Contains("=== pipelines: stats attempt 1, exit 0", logs.Stdout, StringComparison.Ordinal);
        var one = await Cli("logs", runId, "2");
        Assert.StartsWith("=== pipelines: stats attempt 1", one.Stdout, StringComparison.Ordinal);
        var none = await Cli("logs", runId, "9");
        Assert.True(none.ExitCode == 4, none.ToString());
        Assert.Contains($"run {runId} has no task '9'", none.Stderr, StringComparison.Ordinal);

        var unknown = await Cli("status", "20000101-000000-000000");
        Assert.True(unknown.ExitCode == 4, unknown.ToString());
        var ended = await Cli("cancel", runId);
        Assert.True(ended.ExitCode == 1, ended.ToString());
        Assert.Contains($"run {runId} ended succeeded; there is nothing to cancel", ended.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_run_in_another_process_is_seen_running_and_cancelled_from_here_and_ends_cancelled()
    {
        var input = _temp.Combine("naps");
        Directory.CreateDirectory(input);
        foreach (var name in new[] { "a.txt", "b.txt", "c.txt" })
        {
            await File.WriteAllTextAsync(Path.Combine(input, name), name);
        }

        var workflow = _temp.Write("naps.yaml", $$"""
            version: 1
            name: naps
            input:
              uri: {{input}}
            steps:
              - name: nap
                image: pipelines-samples/pair-check:1
                command: ["busybox", "sleep", "120"]
                resources: { cpus: 0.1, memory: 32Mi, timeout: 5m }
            output:
              uri: {{_temp.Combine("naps-out")}}
            """);
        using var run = CliRunner.Start(["run", workflow, "--local-workers", "2"], _env);

        // The run's first line names it; a log line the engine printed before it (a warning on a loaded
        // machine, at 04:00 once) is no run id: read past it, and say what it was if no run line comes.
        var before = new List<string>();
        var first = await run.StandardOutput.ReadLineAsync();
        while (first is not null && !first.StartsWith("run ", StringComparison.Ordinal) && before.Count < 50)
        {
            before.Add(first);
            first = await run.StandardOutput.ReadLineAsync();
        }

        Assert.True(first is not null && first.StartsWith("run ", StringComparison.Ordinal), "no line naming the run; printed before it:\n" + string.Join("\n", before));
        var runId = first.Split(' ', ':')[1];

        // Seen from another process while it runs: the counts its process publishes.
        var clock = Stopwatch.StartNew();
        JsonElement? status = null;
        CliRunner.Result? last = null;
        while (status is not { } s || s.GetProperty("counts").ValueKind != JsonValueKind.Object || s.GetProperty("counts").GetProperty("running").GetInt32() < 2)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"the run was not seen running within a minute; the last status read: {last}");
            await Task.Delay(300);
            last = await Cli("status", runId, "--json");
            status = last.ExitCode == 0 ? JsonDocument.Parse(last.Stdout).RootElement : null;
        }

        Assert.Equal("running", status.Value.GetProperty("state").GetString());
        Assert.Contains("running", (await Cli("runs")).Stdout, StringComparison.Ordinal);

        var cancel = await Cli("cancel", runId, "--wait");
        Assert.True(cancel.ExitCode == 0, cancel.ToString());
        Assert.Contains($"run {runId}: cancel requested", cancel.Stdout, StringComparison.Ordinal);
        Assert.Contains($"run {runId} (naps): cancelled", cancel.Stdout, StringComparison.Ordinal);
        var rest = await run.StandardOutput.ReadToEndAsync();
        await run.WaitForExitAsync();
        Assert.True(run.ExitCode == 6, $"exit {run.ExitCode}\n{rest}");
        Assert.Contains($"run {runId} cancelled in ", rest, StringComparison.Ordinal);
        Assert.Contains($"cancel requested by {Environment.UserName}@{Environment.MachineName}", rest, StringComparison.Ordinal);
        var after = await Cli("status", runId);
        Assert.True(after.ExitCode == 6, after.ToString());
        Assert.Contains("tasks:   3 (0 succeeded, 0 cached, 0 failed, 3 cancelled)", after.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Logs_follow_prints_each_steps_log_while_the_run_goes_on_and_ends_with_the_run()
    {
        var input = _temp.Combine("slow");
        Directory.CreateDirectory(input);
        foreach (var name in new[] { "a.txt", "b.txt", "c.txt" })
        {
            await File.WriteAllTextAsync(Path.Combine(input, name), name);
        }

        // One task at a time, each some seconds long: the first log is written well before the run ends.
        var workflow = _temp.Write("slow.yaml", $$"""
            version: 1
            name: slow
            input:
              uri: {{input}}
            steps:
              - name: nap
                image: pipelines-samples/pair-check:1
                command: ["busybox", "sh", "-c", "sleep 5; echo napped"]
                resources: { cpus: 0.1, memory: 32Mi, timeout: 5m }
            output:
              uri: {{_temp.Combine("slow-out")}}
            """);
        using var run = CliRunner.Start(["run", workflow, "--local-workers", "1"], _env);
        var first = await run.StandardOutput.ReadLineAsync();
        Assert.NotNull(first);
        var runId = first.Split(' ', ':')[1];

        using var follow = CliRunner.Start(["logs", runId, "--follow"], _env);
        var header = await follow.StandardOutput.ReadLineAsync();
        Assert.NotNull(header);
        // A run still going is known here by its folder alone: its tasks by their ids (docs/cli.md).
        Assert.Matches(@"^==> task \([0-9a-f]+\) step nap <==$", header);
        Assert.False(run.HasExited, "the run ended before --follow printed its first log: nothing was followed");

        // It stops by itself once the run has ended, having printed every step's log once.
        var rest = await follow.StandardOutput.ReadToEndAsync();
        await follow.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token);
        Assert.True(follow.ExitCode == 0, $"exit {follow.ExitCode}\n{rest}");
        await run.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token);
        Assert.Equal(0, run.ExitCode);
        var headers = (header + "\n" + rest).Split('\n').Where(l => l.StartsWith("==> task ", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, headers.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(3, rest.Split('\n').Count(l => l == "napped"));
    }

    [Fact]
    public async Task Version_says_the_engines_version_and_commit_and_its_json_has_a_schema()
    {
        var text = await Cli("--version");
        var json = JsonDocument.Parse((await Cli("--version", "--json")).Stdout).RootElement;

        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Matches(@"^pipelines \d+\.\d+\.\d+( \(commit [0-9a-f]+\))?, \.NET \d+", text.Stdout);
        Assert.Equal("pipelines.version/1", json.GetProperty("schema").GetString());
        Assert.StartsWith(json.GetProperty("version").GetString()!, text.Stdout["pipelines ".Length..], StringComparison.Ordinal);
    }

    private Task<CliRunner.Result> Cli(params string[] args) => CliRunner.RunAsync(args, _env);

    public void Dispose() => _temp.Dispose();
}
