using System.Text.Json;
using System.Text.RegularExpressions;
using Pipelines.Tests.Harvest;
using Pipelines.Tests.Support;
using Pipelines.Tests.Telemetry;

namespace Pipelines.Tests.Server;

/// <summary>
/// Tasks held back because the only worker lends nothing are counted as held, with the reason,
/// where a user looks: the API, `status` and `runs` (through the server and on PostgreSQL), the
/// dashboard's run page, all with the worker's reason and words; the dispatcher releases none of
/// them to that worker (it offers no slot: Queue/WorkerSlots), its pipelines.tasks.pending
/// gauge counts them and pipelines.tasks.pending.held says why; and `cancel` ends such a run. A
/// real server (api, dashboard) and a real worker whose policy lends nothing (never), on
/// PostgreSQL and Swift.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed partial class HeldWorkTests(HeldWorkTests.Fixture fixture) : IClassFixture<HeldWorkTests.Fixture>
{
    /// <summary>A server without the worker role: the test's worker is the only one.</summary>
    public sealed class Fixture : ServerFixture
    {
        protected override IReadOnlyList<string> Roles => ["api", "dashboard"];

        protected override bool StartsWorker => false;
    }

    [Fact]
    public async Task Tasks_held_back_are_counted_with_one_reason_everywhere_a_user_looks_the_metrics_too_and_the_run_can_be_cancelled()
    {
        var env = new Dictionary<string, string?>(fixture.Env) { ["PIPELINES_Harvest__AdmissionHold"] = "00:00:01" };
        await using var worker = await ObservedClusterFixture.WorkerProcess.StartAsync(env, "--policy", "never");
        using var http = fixture.Server.Client();
        var runId = await ServerFixture.SubmitAsync(http, fixture.StatsWorkflow);
        var run = await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("counts").GetProperty("held").GetInt32() == 10, TimeSpan.FromMinutes(2));
        var held = run.GetProperty("counts").GetProperty("held").GetInt32();
        Assert.Equal(held, run.GetProperty("counts").GetProperty("heldBecause").GetProperty("policy").GetInt32());
        Assert.Equal(("running", 10, 0), (run.GetProperty("state").GetString(), run.GetProperty("counts").GetProperty("queued").GetInt32(), run.GetProperty("counts").GetProperty("running").GetInt32()));

        // Each held task says by whom and why: the worker that offers no slot, in its harvester's words.
        var tasks = JsonDocument.Parse(await http.GetStringAsync($"/api/runs/{runId}/tasks?state=queued")).RootElement.GetProperty("items");
        var hold = tasks.EnumerateArray().First(t => t.GetProperty("hold").ValueKind == JsonValueKind.Object).GetProperty("hold");
        Assert.Equal(("policy", "Harvest:Policy is never", worker.Name), (hold.GetProperty("reason").GetString(), hold.GetProperty("detail").GetString(), hold.GetProperty("worker").GetString()));

        // None was released to the worker (it would have taken and handed them back): all pending, never delivered.
        await using (var db = await TestEnvironment.PostgresAsync())
        {
            await using var cmd = db.CreateCommand($"SELECT count(*) FILTER (WHERE released_at IS NOT NULL), max(attempts) FROM {fixture.Env["PIPELINES_Schema"]}.tasks WHERE run_id = @run");
            cmd.Parameters.AddWithValue("run", runId);
            await using var row = await cmd.ExecuteReaderAsync();
            Assert.True(await row.ReadAsync());
            Assert.Equal((0L, 0), (row.GetInt64(0), row.GetInt32(1)));
        }

        // The CLI through the server, and on PostgreSQL itself: the same lines.
        foreach (var where in new[] { new[] { "--server", fixture.Server.Url }, [] })
        {
            var status = await CliRunner.RunAsync(["status", runId, .. where], fixture.Env);
            Assert.True(status.ExitCode == 0, status.ToString());
            Assert.Matches(@"\n  held:    \d+ held \(waiting: the worker's harvesting policy lends nothing \(Harvest:Policy never\)\)\n", status.Stdout);
            Assert.Matches(@"\n  held:    task \d+ by \S+ since \S+ \S+: Harvest:Policy is never\n", status.Stdout);
            var json = JsonDocument.Parse((await CliRunner.RunAsync(["status", runId, "--json", .. where], fixture.Env)).Stdout).RootElement;
            Assert.True(json.GetProperty("counts").GetProperty("held").GetInt32() >= held);
            Assert.Equal("policy", json.GetProperty("held_tasks")[0].GetProperty("reason").GetString());
            var runs = await CliRunner.RunAsync(["runs", "--state", "running", .. where], fixture.Env);
            Assert.Matches($@"{runId}\s+fastq-stats\s+running\s+0/10 \(0 running, \d+ held \(waiting: the worker's harvesting policy", runs.Stdout);
        }

        var page = await http.GetStringAsync($"/hangfire/runs/{runId}");
        Assert.Contains("id=\"held\"", page, StringComparison.Ordinal);
        Assert.Contains("Harvest:Policy is never", page, StringComparison.Ordinal);
        Assert.Contains("held</span>", await http.GetStringAsync("/hangfire/runs"), StringComparison.Ordinal);

        // The worker's dispatcher (it leads: the server runs none) counts the ten waiting for the
        // default tenant; the worker itself holds none, since none came to it.
        using var scrape = new HttpClient { BaseAddress = new Uri(worker.Url), Timeout = TimeSpan.FromSeconds(30) };
        var metrics = await Eventually.WaitAsync(async () =>
        {
            var text = await scrape.GetStringAsync("/metrics");
            return PendingSeries().Match(text) is { Success: true } m && m.Groups[1].Value == "10"
                && PendingHeldSeries().Matches(text).Any(h => h.Groups["tenant"].Value == "default" && h.Groups["reason"].Value == "policy" && h.Groups["n"].Value == "10") ? text : null;
        }, () => "the worker's pipelines_tasks_pending{tenant=\"default\"} to count the ten waiting tasks, and pipelines_tasks_pending_held{reason=\"policy\"} to hold them");
        Assert.All(HeldSeries().Matches(metrics), m => Assert.Equal("0", m.Groups[2].Value));

        // Why they wait, from the same look: all ten held by the worker's policy, none by anything else.
        var why = PendingHeldSeries().Matches(metrics).Where(m => m.Groups["tenant"].Value == "default").ToDictionary(m => m.Groups["reason"].Value, m => m.Groups["n"].Value);
        Assert.Equal("10", why.GetValueOrDefault("policy"));
        Assert.All(why.Where(w => w.Key != "policy"), w => Assert.Equal("0", w.Value));
        Assert.Equal(["budget", "drain", "owner_load", "policy", "quota"], why.Keys.Order(StringComparer.Ordinal));

        var cancel = await CliRunner.RunAsync(["cancel", runId, "--wait"], fixture.Env, TimeSpan.FromMinutes(2));
        Assert.True(cancel.ExitCode == 0, cancel.ToString());
        Assert.Contains($"run {runId} (fastq-stats): cancelled", cancel.Stdout, StringComparison.Ordinal);
        Assert.Contains("tasks:   10 (0 succeeded, 0 cached, 0 failed, 10 cancelled)", cancel.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("held", cancel.Stdout, StringComparison.Ordinal);
        var again = await CliRunner.RunAsync(["cancel", runId, "--server", fixture.Server.Url], fixture.Env);
        Assert.True(again.ExitCode == 1, again.ToString());
        Assert.Contains($"409 run {runId} ended cancelled; there is nothing to cancel", again.Stderr, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^pipelines_tasks_held\{[^}]*reason=""([a-z_]+)""[^}]*\} (\d+)", RegexOptions.Multiline)]
    private static partial Regex HeldSeries();

    [GeneratedRegex(@"^pipelines_tasks_pending_held\{(?=[^}]*reason=""(?<reason>[a-z_]+)"")(?=[^}]*tenant=""(?<tenant>[a-z0-9-]+)"")[^}]*\} (?<n>\d+)", RegexOptions.Multiline)]
    private static partial Regex PendingHeldSeries();

    [GeneratedRegex(@"^pipelines_tasks_pending\{[^}]*tenant=""default""[^}]*\} (\d+)", RegexOptions.Multiline)]
    private static partial Regex PendingSeries();
}
