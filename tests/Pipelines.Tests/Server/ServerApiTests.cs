using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;
using Xunit.Abstractions;

namespace Pipelines.Tests.Server;

/// <summary>
/// The REST API over real HTTP against a `pipelines server` process with PostgreSQL, Swift and
/// Docker, with no key configured: requests from loopback get full access.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class ServerApiTests(ServerFixture fixture, ITestOutputHelper output)
{
    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    [Fact]
    public async Task A_submitted_run_is_listed_read_with_its_tasks_and_files_and_succeeds()
    {
        using var http = fixture.Server.Client();
        var clock = Stopwatch.StartNew();
        using var submit = await http.PostAsJsonAsync("/api/runs", new { workflow = fixture.StatsWorkflow, set = new[] { "steps[0].retries=0" } });
        output.WriteLine($"POST /api/runs: {clock.ElapsedMilliseconds} ms");
        var submitted = JsonDocument.Parse(await submit.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.Accepted, submit.StatusCode);
        var runId = submitted.GetProperty("runId").GetString()!;
        Assert.Equal($"/api/runs/{runId}", submit.Headers.Location?.OriginalString);
        Assert.Equal($"/api/runs/{runId}", submitted.GetProperty("url").GetString());
        Assert.Equal(10, submitted.GetProperty("tasks").GetInt32());
        Assert.Equal(200, submitted.GetProperty("inputs").GetInt32());

        var run = await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("state").GetString() == "succeeded", TimeSpan.FromMinutes(2));
        Assert.Equal("fastq-stats", run.GetProperty("workflow").GetString());
        Assert.Equal(10, run.GetProperty("counts").GetProperty("succeeded").GetInt32());
        Assert.Equal(10, run.GetProperty("counts").GetProperty("total").GetInt32());
        Assert.True(run.GetProperty("durationSeconds").GetDouble() > 0);
        Assert.True(run.TryGetProperty("finishedAt", out _));

        clock.Restart();
        var list = await http.GetFromJsonAsync<JsonElement>("/api/runs?workflow=fastq-stats&state=succeeded&limit=5");
        output.WriteLine($"GET /api/runs: {clock.ElapsedMilliseconds} ms");
        Assert.Contains(list.GetProperty("items").EnumerateArray(), r => r.GetProperty("runId").GetString() == runId);
        var none = await http.GetFromJsonAsync<JsonElement>("/api/runs?workflow=no-such-workflow");
        Assert.Equal(0, none.GetProperty("total").GetInt32());
        using var badState = await http.GetAsync("/api/runs?state=sleeping");
        Assert.Equal(HttpStatusCode.BadRequest, badState.StatusCode);

        clock.Restart();
        var tasks = await http.GetFromJsonAsync<JsonElement>($"/api/runs/{runId}/tasks?offset=2&limit=3&state=succeeded");
        output.WriteLine($"GET /api/runs/ID/tasks: {clock.ElapsedMilliseconds} ms");
        Assert.Equal(10, tasks.GetProperty("total").GetInt32());
        var items = tasks.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal([2, 3, 4], items.Select(t => t.GetProperty("index").GetInt32()));
        var task = items[0];
        Assert.Equal("succeeded", task.GetProperty("state").GetString());
        Assert.Equal(20, task.GetProperty("inputs").GetArrayLength());
        Assert.Equal(1, task.GetProperty("attempts").GetInt32());
        Assert.Equal(0, task.GetProperty("exitCode").GetInt64());
        var logUrl = task.GetProperty("logs").GetProperty("stats").GetString()!;

        var log = await http.GetStringAsync(logUrl);
        Assert.Contains("=== pipelines: stats attempt 1, exit 0", log, StringComparison.Ordinal);
        var csv = await http.GetStringAsync($"/api/runs/{runId}/files/results/stats.csv");
        Assert.Equal(201, csv.TrimEnd('\n').Split('\n').Length);

        // The dashboard's run page lists the result files that run.json names.
        var page = await http.GetStringAsync($"/hangfire/runs/{runId}");
        Assert.Contains($"href=\"/api/runs/{runId}/files/results/stats.parquet\"", page, StringComparison.Ordinal);
        Assert.Contains($"href=\"/api/runs/{runId}/files/results/stats.csv\"", page, StringComparison.Ordinal);
        using var outside = await http.GetAsync($"/api/runs/{runId}/files/..%2F..%2Fraw%2Flane1%2FS001_R1.fastq");
        Assert.Equal(HttpStatusCode.NotFound, outside.StatusCode);
        using var missing = await http.GetAsync("/api/runs/20000101-000000-000000");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);

        // The run's records hold no credential of the server.
        var runJson = await new RunFolder(fixture.Stores.Open($"s3://{fixture.Bucket}/results/{runId}/")).ReadAsync("run.json");
        var secret = TestEnvironment.Require("AWS_SECRET_ACCESS_KEY");
        Assert.DoesNotContain(secret, System.Text.Encoding.UTF8.GetString(runJson), StringComparison.Ordinal);
        Assert.DoesNotContain(secret, fixture.Server.Output, StringComparison.Ordinal);
        Assert.Contains($"run {runId} of fastq-stats submitted by local", fixture.Server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancel_stops_running_containers_and_the_run_ends_cancelled()
    {
        using var http = fixture.Server.Client();
        var outputFrom = fixture.Server.Output.Length;
        var runId = await ServerFixture.SubmitAsync(http, fixture.SleepWorkflow);
        await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("counts").GetProperty("running").GetInt32() > 0, TimeSpan.FromMinutes(1));
        var containers = TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        while ((await ServerFixture.ContainersOfAsync(runId)).Count == 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "no container started");
            await Task.Delay(200);
        }

        clock.Restart();
        using var cancel = await http.PostAsync($"/api/runs/{runId}/cancel", null);
        output.WriteLine($"POST /api/runs/ID/cancel: {clock.ElapsedMilliseconds} ms");
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        var accepted = JsonDocument.Parse(await cancel.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("cancelled by local", accepted.GetProperty("stopReason").GetString());

        var run = await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("state").GetString() == "cancelled", TimeSpan.FromSeconds(30));
        output.WriteLine($"cancel to run cancelled: {clock.ElapsedMilliseconds} ms");
        while ((containers = clock.Elapsed) < TimeSpan.FromSeconds(10) && (await ServerFixture.ContainersOfAsync(runId)).Count > 0)
        {
            await Task.Delay(200);
        }

        var left = await ServerFixture.ContainersOfAsync(runId);
        Assert.True(left.Count == 0, $"{left.Count} container(s) of the run left {clock.Elapsed} after the cancel: "
            + string.Join("; ", left.Select(c => $"{c.ID[..12]} {c.State} {c.Status} task={(c.Labels.TryGetValue("org.pipelines.task", out var t) ? t : "-")}"))
            + "\nthe server's log:\n" + fixture.Server.Output[outputFrom..]);
        output.WriteLine($"cancel to no container left: {containers.TotalMilliseconds:0} ms");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"cancelling took {clock.Elapsed}");
        var counts = run.GetProperty("counts");
        Assert.Equal(counts.GetProperty("total").GetInt32(), counts.GetProperty("cancelled").GetInt32());

        // A stopped step is recorded as cancelled after one attempt, not retried.
        var tasks = await http.GetFromJsonAsync<JsonElement>($"/api/runs/{runId}/tasks?limit=500");
        var started = tasks.GetProperty("items").EnumerateArray().Where(t => t.GetProperty("attempts").GetInt32() > 0).ToList();
        Assert.NotEmpty(started);
        Assert.All(started, t =>
        {
            Assert.Equal(1, t.GetProperty("attempts").GetInt32());
            Assert.StartsWith("step 'nap' was stopped: cancelled by local", t.GetProperty("error").GetString(), StringComparison.Ordinal);
        });

        var runJson = JsonDocument.Parse(await new RunFolder(fixture.Stores.Open($"s3://{fixture.Bucket}/sleepy/{runId}/")).ReadAsync("run.json")).RootElement;
        Assert.Equal("cancelled", runJson.GetProperty("status").GetString());

        using var again = await http.PostAsync($"/api/runs/{runId}/cancel", null);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
    }

    [Fact]
    public async Task A_bad_workflow_is_400_with_every_problem()
    {
        using var http = fixture.Server.Client();
        var yaml = fixture.StatsWorkflow.Replace("name: fastq-stats", "name: Fastq Stats!", StringComparison.Ordinal).Replace("to: [parquet, csv]", "to: [xlsx]", StringComparison.Ordinal);
        using var response = await http.PostAsJsonAsync("/api/runs", new { workflow = yaml });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("The workflow is not valid", problem.GetProperty("title").GetString());
        var problems = problem.GetProperty("problems").EnumerateArray().ToList();
        Assert.True(problems.Count >= 2, problem.ToString());
        Assert.Contains(problems, p => p.GetProperty("path").GetString() == "name" && p.GetProperty("line").GetInt32() == 2);

        // Raw YAML with relative paths: an API submission has no folder to resolve them against.
        using var raw = new StringContent(File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "workflows", "fastq-stats.yaml")), System.Text.Encoding.UTF8, "application/yaml");
        using var relative = await http.PostAsync("/api/runs", raw);
        Assert.Equal(HttpStatusCode.BadRequest, relative.StatusCode);
        Assert.Contains("is a relative path, but this workflow was not read from a file", await relative.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_workflow_over_the_API_may_not_read_or_write_the_servers_own_folders()
    {
        // The server runs as root: a key holder must not get /etc as input, nor write under /root.
        using var http = fixture.Server.Client();
        var yaml = fixture.StatsWorkflow + "\n";
        using var response = await http.PostAsJsonAsync("/api/runs", new { workflow = yaml, set = new[] { "input.uri=/etc", "output.uri=file:///root/out" } });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problems = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("problems").EnumerateArray().ToList();
        Assert.Contains(problems, p => p.GetProperty("path").GetString() == "input.uri" && p.GetProperty("message").GetString()!.Contains("'/etc' is a local folder of the server; for a workflow submitted over the API none are allowed on this server (Submit:LocalRoots); use s3://", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.GetProperty("path").GetString() == "output.uri");
    }

    [Fact]
    public async Task The_OpenAPI_document_and_the_health_endpoints_are_served()
    {
        using var http = fixture.Server.Client();
        var openapi = await http.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = openapi.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToList();
        Assert.Contains("/api/runs", paths);
        Assert.Contains("/api/runs/{runId}/cancel", paths);
        Assert.Contains("/api/runs/{runId}/tasks", paths);

        var clock = Stopwatch.StartNew();
        using var healthz = await http.GetAsync("/healthz");
        output.WriteLine($"GET /healthz: {clock.ElapsedMilliseconds} ms");
        Assert.Equal(HttpStatusCode.OK, healthz.StatusCode);
        clock.Restart();
        var ready = await http.GetFromJsonAsync<JsonElement>("/readyz");
        output.WriteLine($"GET /readyz: {clock.ElapsedMilliseconds} ms");
        Assert.Equal("healthy", ready.GetProperty("status").GetString());
        foreach (var check in new[] { "postgres", "bucket", "docker" })
        {
            Assert.Equal("healthy", ready.GetProperty("checks").GetProperty(check).GetProperty("status").GetString());
        }

        // Worker heartbeats: this process runs a Hangfire server, shown on the dashboard's Servers page.
        var servers = await http.GetStringAsync("/hangfire/servers");
        Assert.Contains("default", servers, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_CLI_runs_and_reads_a_run_through_the_server()
    {
        var env = new Dictionary<string, string?> { ["PIPELINES_HOME"] = fixture.Temp.Combine("cli-home") };
        var run = await CliRunner.RunAsync(
            ["run", "workflows/fastq-stats.yaml", "--server", fixture.Server.Url,
             "--set", $"input.uri=s3://{fixture.Bucket}/raw/", "--set", $"output.uri=s3://{fixture.Bucket}/cli/", "--set", "input.batch=50"],
            env, TimeSpan.FromMinutes(3));

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("4 task(s) over 200 input file(s), submitted to the server", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("results: stats: 200 rows gathered", run.Stdout, StringComparison.Ordinal);
        var runId = RunFolder.RunIdFrom(run);

        var status = await CliRunner.RunAsync(["status", runId, "--server", fixture.Server.Url], env);
        Assert.Equal(0, status.ExitCode);
        Assert.Contains($"run {runId} (fastq-stats): succeeded", status.Stdout, StringComparison.Ordinal);

        // The everyday verbs, through the server and on PostgreSQL itself: the same answers.
        var postgres = new Dictionary<string, string?>(fixture.Env) { ["PIPELINES_HOME"] = fixture.Temp.Combine("cli-home-pg") };
        foreach (var (where, how) in new[] { (env, new[] { "--server", fixture.Server.Url }), (postgres, []) })
        {
            var json = JsonDocument.Parse((await CliRunner.RunAsync(["status", runId, "--json", .. how], where)).Stdout).RootElement;
            Assert.Equal(("pipelines.run/1", "succeeded", 4, 200L), (json.GetProperty("schema").GetString(), json.GetProperty("state").GetString(), json.GetProperty("counts").GetProperty("succeeded").GetInt32(), json.GetProperty("results").GetProperty("stats").GetProperty("rows").GetInt64()));

            var runs = JsonDocument.Parse((await CliRunner.RunAsync(["runs", "--state", "succeeded", "--since", "1h", "--limit", "500", "--json", .. how], where)).Stdout).RootElement;
            Assert.Equal("pipelines.runs/1", runs.GetProperty("schema").GetString());
            Assert.Contains(runs.GetProperty("runs").EnumerateArray(), r => r.GetProperty("run_id").GetString() == runId);
            Assert.Matches($@"{runId}\s+fastq-stats\s+succeeded\s+4/4 \(0 failed\)", (await CliRunner.RunAsync(["runs", "--workflow", "fastq-stats", .. how], where)).Stdout);

            var logs = await CliRunner.RunAsync(["logs", runId, .. how], where);
            Assert.True(logs.ExitCode == 0, logs.ToString());
            Assert.Equal(4, logs.Stdout.Split('\n').Count(l => l.StartsWith("==> task ", StringComparison.Ordinal) && l.EndsWith(" step stats: succeeded <==", StringComparison.Ordinal)));
            var one = await CliRunner.RunAsync(["logs", runId, "3", .. how], where);
            Assert.StartsWith("=== pipelines: stats attempt 1", one.Stdout, StringComparison.Ordinal);
            Assert.Equal(4, (await CliRunner.RunAsync(["logs", runId, "7", .. how], where)).ExitCode);

            var ended = await CliRunner.RunAsync(["cancel", runId, .. how], where);
            Assert.True(ended.ExitCode == 1, ended.ToString());
            Assert.Contains($"run {runId} ended succeeded; there is nothing to cancel", ended.Stderr, StringComparison.Ordinal);
            Assert.Equal(4, (await CliRunner.RunAsync(["status", "20000101-000000-000000", .. how], where)).ExitCode);
        }

        // The server's problems come back as the same message and exit code as a local validation.
        var bad = fixture.Temp.Write("bad.yaml", fixture.StatsWorkflow.Replace("to: [parquet, csv]", "to: [xlsx]", StringComparison.Ordinal));
        var invalid = await CliRunner.RunAsync(["run", bad, "--server", fixture.Server.Url], env);
        Assert.Equal(2, invalid.ExitCode);
        Assert.Contains($"{bad} is not a valid workflow (1 problem):", invalid.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_PostgreSQL_a_server_that_would_leave_its_jobs_to_others_refuses_to_start_in_one_line()
    {
        var result = await CliRunner.RunAsync(["server", "--urls", "http://127.0.0.1:9", "--roles", "api,dashboard"], new Dictionary<string, string?> { ["PIPELINES_HOME"] = fixture.Temp.Combine("nopg") });

        Assert.Equal(1, result.ExitCode);
        Assert.Equal(
            "error: Server:Roles is api, dashboard: without PostgreSQL no other process shares this server's queue and stores, so it runs the worker and triggers roles itself (add them, or set PIPELINES_POSTGRES)",
            result.Stderr.Trim());
    }
}
