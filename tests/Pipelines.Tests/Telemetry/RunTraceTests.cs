using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Pipelines.Gather;
using Pipelines.Hosting;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Telemetry;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Telemetry;

/// <summary>
/// One trace per run: the spans an in-memory exporter collects form one tree under the
/// submission, which run.json and every provenance row name. The tasks and the gather run as
/// Hangfire jobs on the host's worker threads, started before the submission, so nothing of the
/// submission's context reaches them but what the run record carries (RunDefinition.TraceParent),
/// as in another process. (That it does across processes, a server and two worker processes, is
/// PrometheusScrapeTests's: every row of a run names the trace of its run.json.)
/// </summary>
[Integration]
public sealed class RunTraceTests : IAsyncLifetime
{
    private readonly TempFolder _temp = new();
    private readonly List<Activity> _spans = [];
    private TracerProvider _tracing = null!;
    private IHost _host = null!;

    public async Task InitializeAsync()
    {
        _tracing = Sdk.CreateTracerProviderBuilder().AddSource(EngineTracing.SourceName).SetSampler(new AlwaysOnSampler()).AddInMemoryExporter(_spans).Build()!;
        _host = EngineHost.Build(Config("trace-worker"), worker: true);
        await _host.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
        _tracing.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public async Task A_runs_submission_tasks_attempts_containers_and_gather_are_one_trace_named_by_run_json_and_provenance()
    {
        var output = _temp.Combine("out") + "/";
        var yaml = File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "workflows", "fastq-stats.yaml"))
            .Replace("../sample-data/fastq/", Path.Combine(TestEnvironment.SampleFastq, "lane1") + "/", StringComparison.Ordinal)
            .Replace("../output/fastq-stats/", output, StringComparison.Ordinal)
            .Replace("batch: 10 ", "batch: 20 ", StringComparison.Ordinal);
        var submitted = await _host.Services.GetRequiredService<RunSubmitter>().SubmitAsync(yaml, "trace.yaml", _temp.Path, [], CancellationToken.None);
        var store = _host.Services.GetRequiredService<IRunStore>();
        var clock = Stopwatch.StartNew();
        RunRecord? run;
        while ((run = await store.GetRunAsync(submitted.RunId, CancellationToken.None)) is not { State: RunState.Succeeded or RunState.Failed or RunState.Cancelled })
        {
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(3), "the run did not end in 3 minutes");
            await Task.Delay(200);
        }

        Assert.Equal(RunState.Succeeded, run.State);
        var folder = new RunFolder(_host.Services.GetRequiredService<ObjectStoreFactory>().Open(run.OutputUri));
        var traceId = RunSummary.FromJson(await folder.ReadAsync("run.json")).TraceId;
        Assert.Matches("^[0-9a-f]{32}$", traceId);

        // The run is ended (FinishRunAsync) a moment before its gather's span is: wait for that span.
        List<Activity> spans;
        clock.Restart();
        while (true)
        {
            _tracing.ForceFlush();
            lock (_spans)
            {
                spans = _spans.Where(s => s.TraceId.ToHexString() == traceId).ToList();
            }

            if (spans.Any(s => s.OperationName == "pipelines.run.gather") || clock.Elapsed > TimeSpan.FromSeconds(30))
            {
                break;
            }

            await Task.Delay(50);
        }

        Activity One(string name) => Assert.Single(spans, s => s.OperationName == name);
        List<Activity> Children(Activity parent, string name) => spans.Where(s => s.ParentSpanId == parent.SpanId && s.OperationName == name).ToList();

        // The submission is the root; its parts are its children.
        var submit = One("pipelines.run.submit");
        Assert.Equal(default, submit.ParentSpanId);
        Assert.Equal(submitted.RunId, submit.GetTagItem("pipelines.run.id"));
        Assert.Single(Children(submit, "pipelines.run.plan"));
        Assert.Single(Children(submit, "pipelines.run.record"));
        Assert.Single(Children(submit, "pipelines.run.enqueue"));

        // Each task, run by a worker thread, is a child of the submission: one delivery each.
        var tasks = Children(submit, "pipelines.task");
        Assert.Equal(submitted.Tasks, tasks.Count);
        Assert.Equal(Enumerable.Range(0, submitted.Tasks), tasks.Select(t => (int)t.GetTagItem("pipelines.task.index")!).Order());
        var rows = await folder.ProvenanceAsync();
        foreach (var task in tasks)
        {
            Assert.Equal("succeeded", task.GetTagItem("pipelines.task.state"));
            Assert.Single(Children(task, "pipelines.task.stage_in"));
            var attempt = Assert.Single(Children(task, "pipelines.step.attempt"));
            Assert.Equal("stats", attempt.GetTagItem("pipelines.step"));
            Assert.Single(Children(attempt, "pipelines.container"));
            Assert.Single(Children(attempt, "pipelines.task.stage_out"));

            // The task's provenance row names the run's trace and its attempt's own span.
            var row = Assert.Single(rows, r => r.TaskIndex == (int)task.GetTagItem("pipelines.task.index")!);
            Assert.Equal(traceId, row.TraceId);
            Assert.Equal(attempt.SpanId.ToHexString(), row.SpanId);
            Assert.Equal("trace-worker", row.Worker);
        }

        // The gather closes the run under the same submission.
        var gather = Assert.Single(Children(submit, "pipelines.run.gather"));
        Assert.Equal("succeeded", gather.GetTagItem("pipelines.run.state"));
        Assert.All(spans, s => Assert.Contains(s.ParentSpanId == default ? s : spans.Single(p => p.SpanId == s.ParentSpanId), spans));
    }

    private IConfiguration Config(string name) => new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["Worker:Name"] = name,
        ["Worker:Concurrency"] = "2",
        ["Harvest:Policy"] = "always",
    }).Build();
}
