using System.Text.Json;
using System.Text.RegularExpressions;
using Pipelines.Tests.Support;
using Xunit.Abstractions;

namespace Pipelines.Tests.Telemetry;

/// <summary>
/// A real Prometheus scrapes a server and two workers during real work, and what it holds is
/// what an operator's dashboard and alerts would read: the tasks counter, the queue drained to
/// zero, every metric the shipped Grafana dashboard queries, with the names and units the docs give.
/// </summary>
[Integration]
public sealed partial class PrometheusScrapeTests(ObservedClusterFixture fixture, ITestOutputHelper output) : IClassFixture<ObservedClusterFixture>
{
    [Fact]
    public async Task Prometheus_counts_every_task_and_sees_the_queue_fill_then_drain_to_zero()
    {
        var prometheus = fixture.Prometheus;
        Assert.Equal(3, await prometheus.ValueAsync("sum(up)"));

        // Every task of every run is counted once, by the worker that ended it, whichever it was.
        var tasks = fixture.Runs.Sum(r => r.TaskCount);
        Assert.True(tasks >= 21, $"{tasks} tasks");
        await prometheus.WaitForAsync("sum(pipelines_tasks_total{job=\"pipelines-worker\"})", v => v >= tasks, TimeSpan.FromSeconds(30));
        Assert.Equal(tasks, await prometheus.ValueAsync("sum(pipelines_tasks_total{job=\"pipelines-worker\",state=\"succeeded\"})"));
        Assert.Equal(tasks, await prometheus.ValueAsync("sum(pipelines_tasks_total{job=\"pipelines-worker\"})"));
        var perWorker = await prometheus.QueryAsync("sum by (instance) (pipelines_tasks_total{job=\"pipelines-worker\",state=\"succeeded\"})");
        output.WriteLine(string.Join(", ", perWorker.Select(w => $"{w.Labels["instance"]}: {w.Value}")));
        Assert.Equal(2, perWorker.Count);

        // The queue held the batch run's jobs for a while, and is empty once the work is done.
        output.WriteLine($"peak queue depth seen: {fixture.PeakQueueDepth}");
        Assert.True(fixture.PeakQueueDepth > 0, "Prometheus never saw a job waiting in the queue");
        Assert.Equal(0, await prometheus.WaitForAsync("max(pipelines_queue_depth{job=\"pipelines-server\",queue=\"default\"})", v => v == 0, TimeSpan.FromSeconds(30)));
        Assert.True(await prometheus.ValueAsync("max_over_time(max(pipelines_queue_depth{queue=\"default\"})[10m:1s])") > 0);

        // The runs ended, and were counted so, and the workers ran nothing now.
        Assert.Equal(fixture.Runs.Count, await prometheus.ValueAsync("sum(pipelines_runs_total{state=\"succeeded\"})"));
        Assert.Equal(0, await prometheus.ValueAsync("sum(pipelines_tasks_running)"));
    }

    [Fact]
    public async Task Every_metric_the_grafana_dashboard_queries_is_served_after_real_work()
    {
        using var dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(TestEnvironment.RepoRoot, "deploy", "grafana", "pipelines.json")));
        var expressions = Expressions(dashboard.RootElement).ToList();
        Assert.NotEmpty(expressions);
        var queried = expressions.SelectMany(e => MetricName().Matches(e).Select(m => m.Value)).ToHashSet(StringComparer.Ordinal);
        output.WriteLine($"{expressions.Count} expressions over {queried.Count} metrics");

        var served = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, text) in await fixture.ScrapeAllAsync())
        {
            served.UnionWith(ObservedClusterFixture.SampleNames(text));
        }

        Assert.Empty(queried.Where(m => !served.Contains(m)).Order(StringComparer.Ordinal));

        // And Prometheus has every one of them, from the processes it scraped: served above, so in
        // Prometheus by its next scrape of each process (a metric first made by the last piece of
        // work may postdate the scrape before).
        foreach (var metric in queried)
        {
            await fixture.Prometheus.WaitForAsync($"count({metric})", v => v >= 1, TimeSpan.FromSeconds(30));
        }
    }

    [Theory]
    [InlineData("pipelines_tasks_total", "counter")]
    [InlineData("pipelines_tasks_running", "gauge")]
    [InlineData("pipelines_tasks_held", "gauge")]
    [InlineData("pipelines_task_duration_seconds", "histogram")]
    [InlineData("pipelines_step_duration_seconds", "histogram")]
    [InlineData("pipelines_runs_total", "counter")]
    [InlineData("pipelines_runs_submitted_total", "counter")]
    [InlineData("pipelines_gather_duration_seconds", "histogram")]
    [InlineData("pipelines_queue_depth", "gauge")]
    [InlineData("pipelines_queue_oldest_age_seconds", "gauge")]
    [InlineData("pipelines_container_start_duration_seconds", "histogram")]
    [InlineData("pipelines_warm_containers", "gauge")]
    [InlineData("pipelines_warm_requests_total", "counter")]
    [InlineData("pipelines_warm_replaced_total", "counter")]
    [InlineData("pipelines_function_invocation_duration_seconds", "histogram")]
    [InlineData("pipelines_function_invocation_errors_total", "counter")]
    [InlineData("pipelines_harvest_owner_cpu_utilization", "gauge")]
    [InlineData("pipelines_harvest_cpu_time_seconds_total", "counter")]
    [InlineData("pipelines_harvest_suspended", "gauge")]
    [InlineData("pipelines_harvest_vacated_total", "counter")]
    [InlineData("pipelines_harvest_idle_class", "gauge")]
    [InlineData("pipelines_trigger_lag_seconds", "histogram")]
    [InlineData("pipelines_storage_errors_total", "counter")]
    [InlineData("pipelines_outage_waits_total", "counter")]
    [InlineData("pipelines_outage_wait_time_seconds_total", "counter")]
    [InlineData("db_client_operation_failed_total", "counter")]
    public async Task A_metric_is_served_with_its_documented_name_unit_and_type(string name, string type)
    {
        var all = await fixture.ScrapeAllAsync();
        var declared = all.Select(p => Regex.Match(p.Text, $"^# TYPE {Regex.Escape(name)} (\\w+)$", RegexOptions.Multiline)).Where(m => m.Success).ToList();
        Assert.True(declared.Count > 0, $"no process serves {name}");
        Assert.All(declared, m => Assert.Equal(type, m.Groups[1].Value));

        // docs/operations.md lists it with the same name.
        var docs = await File.ReadAllTextAsync(Path.Combine(TestEnvironment.RepoRoot, "docs", "operations.md"));
        Assert.Contains($"`{name}`", docs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_metric_a_doc_names_is_served_and_every_metric_of_ours_served_is_in_the_operations_table()
    {
        var served = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, text) in await fixture.ScrapeAllAsync())
        {
            served.UnionWith(DeclaredMetric().Matches(text).Select(m => m.Groups[1].Value));
        }

        // Named anywhere in docs/ (`pipelines_tasks_total`, in backquotes): served by some process after real work.
        var docs = Directory.EnumerateFiles(Path.Combine(TestEnvironment.RepoRoot, "docs"), "*.md")
            .SelectMany(f => DocumentedMetric().Matches(File.ReadAllText(f)).Select(m => (Doc: Path.GetFileName(f), Name: m.Groups[1].Value)))
            .ToList();
        Assert.Empty(docs.Where(d => !served.Contains(d.Name)).Select(d => $"{d.Doc}: {d.Name}").Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));

        // And the reverse: every metric of the engine's meter that a process serves has its row in the operations table.
        var table = (await File.ReadAllTextAsync(Path.Combine(TestEnvironment.RepoRoot, "docs", "operations.md")))
            .Split('\n').Select(l => TableRow().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        Assert.True(table.Count >= 25, $"{table.Count} rows in docs/operations.md's metrics table");
        Assert.Empty(served.Where(n => n.StartsWith("pipelines_", StringComparison.Ordinal) && !table.Contains(n)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task The_runs_trace_id_is_in_its_run_json_and_every_provenance_row_whichever_worker_ran_the_task()
    {
        var run = fixture.Runs.Single(r => r.RunId == fixture.RunId);
        var folder = new EndToEnd.RunFolder(fixture.Stores.Open(run.OutputUri));
        var traceId = Pipelines.Gather.RunSummary.FromJson(await folder.ReadAsync("run.json")).TraceId;
        Assert.Matches("^[0-9a-f]{32}$", traceId);
        var rows = await folder.ProvenanceAsync();
        Assert.All(rows, r => Assert.Equal(traceId, r.TraceId));
        Assert.All(rows, r => Assert.Matches("^[0-9a-f]{16}$", r.SpanId));
        Assert.Equal(rows.Count, rows.Select(r => r.SpanId).Distinct(StringComparer.Ordinal).Count());
        Assert.True(rows.Select(r => r.Worker).Distinct(StringComparer.Ordinal).Count() == 2, "both workers ran tasks of the run");
    }

    private static IEnumerable<string> Expressions(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in element.EnumerateObject())
            {
                if (p.Name == "expr" && p.Value.ValueKind == JsonValueKind.String)
                {
                    yield return p.Value.GetString()!;
                }

                foreach (var e in Expressions(p.Value))
                {
                    yield return e;
                }
            }
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (var e in element.EnumerateArray().SelectMany(Expressions))
            {
                yield return e;
            }
        }
    }

    [GeneratedRegex(@"\b(pipelines_[a-z0-9_]+|db_client_[a-z0-9_]+)\b")]
    private static partial Regex MetricName();

    /// <summary>A metric family a process serves: its # TYPE line.</summary>
    [GeneratedRegex(@"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) \w+$", RegexOptions.Multiline)]
    private static partial Regex DeclaredMetric();

    /// <summary>A metric of ours a doc names, whole, in backquotes (not `pipelines_always.slice`); Npgsql's are the theory's.</summary>
    [GeneratedRegex(@"`(pipelines_[a-z0-9_]+)`")]
    private static partial Regex DocumentedMetric();

    /// <summary>A row of the metrics table: its first cell, the Prometheus name.</summary>
    [GeneratedRegex(@"^\| `([a-z_][a-z0-9_]*)` \|")]
    private static partial Regex TableRow();
}
