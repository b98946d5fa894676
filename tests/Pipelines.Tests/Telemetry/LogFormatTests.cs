using System.Text.Json;
using Pipelines.Gather;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Telemetry;

/// <summary>
/// --log-format json (Logging:Format) writes one JSON object per line, each with the run, task,
/// attempt and trace it is about as scopes, so a collector can filter a run's lines; the trace is
/// the one run.json names. The same set-up serves every role.
/// </summary>
[Integration]
public sealed class LogFormatTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task Json_log_lines_parse_and_carry_the_run_task_attempt_and_trace_as_scopes()
    {
        var output = _temp.Combine("out") + "/";
        var workflow = _temp.Write("fails.yaml", $$"""
            version: 1
            name: fails-twice
            input:
              uri: {{Path.Combine(TestEnvironment.SampleFastq, "lane1")}}/
              include: ["S00[12]_R1.fastq"]
              batch: 1
            steps:
              - name: flaky
                image: pipelines-samples/pair-check:1
                command: ["busybox", "sh", "-c", "echo no >&2; exit 3"]
                resources: { cpus: 0.1, memory: 32Mi, timeout: 1m }
                retries: 1
                outputs: ["*.tsv"]
            output:
              uri: {{output}}
            on_error: continue
            """);
        var result = await CliRunner.RunAsync(["run", workflow, "--log-format", "json", "-v"], new Dictionary<string, string?>(), TimeSpan.FromMinutes(5));
        var runId = Assert.Single(Directory.GetDirectories(output), d => !Path.GetFileName(d).StartsWith('.'));
        var traceId = RunSummary.FromJson(await File.ReadAllBytesAsync(Path.Combine(runId, "run.json"))).TraceId;
        runId = Path.GetFileName(runId);

        var lines = (result.Stdout + result.Stderr).Split('\n').Where(l => l.StartsWith('{')).ToList();
        Assert.True(lines.Count > 0, result.ToString());
        var logs = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(logs, l =>
        {
            Assert.Matches("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$", l.GetProperty("Timestamp").GetString());
            Assert.False(string.IsNullOrEmpty(l.GetProperty("Category").GetString()));
            Assert.False(string.IsNullOrEmpty(l.GetProperty("Message").GetString()));
        });

        // Each failed attempt is logged inside its task and attempt, in the run's trace.
        var failed = logs.Where(l => l.GetProperty("Message").GetString()!.Contains("step flaky attempt", StringComparison.Ordinal)).Select(Scopes).ToList();
        Assert.Equal(4, failed.Count);
        Assert.All(failed, s =>
        {
            Assert.Equal(runId, s["RunId"]);
            Assert.Equal("flaky", s["Step"]);
            Assert.Equal(traceId, s["TraceId"]);
            Assert.Matches("^[0-9a-f]{16}$", s["SpanId"]);
        });
        Assert.Equal(["0:1", "0:2", "1:1", "1:2"], failed.Select(s => $"{s["TaskIndex"]}:{s["Attempt"]}").Order(StringComparer.Ordinal));

        // The gather's lines name the run and its trace too.
        var ended = Scopes(Assert.Single(logs, l => l.GetProperty("Message").GetString()!.StartsWith($"run {runId} ended", StringComparison.Ordinal)));
        Assert.Equal(runId, ended["RunId"]);
        Assert.Equal(traceId, ended["TraceId"]);
    }

    [Fact]
    public async Task An_unknown_log_format_is_refused_naming_the_option()
    {
        var result = await CliRunner.RunAsync(["validate", Path.Combine(TestEnvironment.RepoRoot, "workflows", "fastq-stats.yaml"), "--log-format", "yaml"], new Dictionary<string, string?>(), TimeSpan.FromMinutes(1));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("Logging:Format (or --log-format) 'yaml': write text or json", result.Stderr, StringComparison.Ordinal);
    }

    /// <summary>A line's scopes, flattened: every property of every scope object.</summary>
    private static Dictionary<string, string> Scopes(JsonElement line)
    {
        var scopes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var scope in line.GetProperty("Scopes").EnumerateArray().Where(s => s.ValueKind == JsonValueKind.Object))
        {
            foreach (var p in scope.EnumerateObject().Where(p => p.Name != "Message"))
            {
                scopes[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();
            }
        }

        return scopes;
    }
}
