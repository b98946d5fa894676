using System.Text.Json;
using Pipelines.RunStore;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// A running-tasks quota on a real server (PostgreSQL, S3, Docker, a worker of two slots): the
/// dispatcher releases the tenant's tasks one at a time, the others wait held by "quota" where a
/// user looks, and nothing is failed or dropped.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class QuotaQueueTests(QuotaQueueTests.Fixture fixture) : IClassFixture<QuotaQueueTests.Fixture>
{
    /// <summary>The server of the default tenant alone, whose quota (Tenancy:Defaults) is one running task.</summary>
    public sealed class Fixture : ServerFixture
    {
        protected override IReadOnlyDictionary<string, string?> MoreEnv => new Dictionary<string, string?>
        {
            ["PIPELINES_Tenancy__Defaults__Quotas__RunningTasks"] = "1",
        };
    }

    [Fact]
    public async Task A_quota_of_one_running_task_runs_the_tasks_one_at_a_time_shows_the_others_held_by_quota_and_all_succeed()
    {
        using var http = fixture.Server.Client();
        var runId = await ServerFixture.SubmitAsync(http, fixture.StatsWorkflow);

        var waiting = await ServerFixture.WaitForAsync(http, runId, r => Quota(r) > 0, TimeSpan.FromMinutes(2));

        // All but the one released (at most) wait held by the quota.
        var counts = waiting.GetProperty("counts");
        Assert.InRange(Quota(waiting), counts.GetProperty("queued").GetInt32() - 1, counts.GetProperty("queued").GetInt32());

        // The hold shows where a user looks, with the words every surface uses: the task listing and
        // `pipelines status`, each read again until it shows the hold, while tasks still wait (on a
        // loaded machine the CLI's start can outlast the last tasks' wait: then it is asked again
        // about a later state only if the run still has tasks held).
        JsonElement? hold = null;
        CliRunner.Result? status = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        JsonElement done;
        while (true)
        {
            if (hold is null)
            {
                var tasks = JsonDocument.Parse(await http.GetStringAsync($"/api/runs/{runId}/tasks?state=queued")).RootElement.GetProperty("items");
                hold = tasks.EnumerateArray().Select(t => t.TryGetProperty("hold", out var h) ? h : default).Where(h => h.ValueKind == JsonValueKind.Object).Select(h => (JsonElement?)h).FirstOrDefault();
            }

            if (status is null)
            {
                var s = await CliRunner.RunAsync(["status", runId, "--server", fixture.Server.Url], fixture.Env);
                Assert.True(s.ExitCode == 0, s.ToString());
                status = s.Stdout.Contains("  held:", StringComparison.Ordinal) ? s : null;
            }

            done = await ServerFixture.GetRunAsync(http, runId);
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(5), $"run {runId} still has tasks held after 5 minutes: {done}");
            if ((hold is not null && status is not null) || Quota(done) == 0)
            {
                break;
            }
        }

        Assert.True(hold is not null, $"no queued task showed a hold while the run had tasks held: {done}");
        Assert.True(status is not null, $"pipelines status never showed the held tasks while the run had tasks held: {done}");
        Assert.Matches(@"\n  held:    \d+ held \(waiting: the tenant runs as many tasks as its quota allows \(Quotas:RunningTasks\)\)\n", status.Stdout);
        Assert.Equal(("quota", "1 of the tenant's 1 running tasks (Quotas:RunningTasks) are taken"), (hold.Value.GetProperty("reason").GetString(), hold.Value.GetProperty("detail").GetString()));

        done = await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("state").GetString() is "succeeded" or "failed" or "cancelled", TimeSpan.FromMinutes(5));
        Assert.Equal(("succeeded", 10, 0), (done.GetProperty("state").GetString(), done.GetProperty("counts").GetProperty("succeeded").GetInt32(), done.GetProperty("counts").GetProperty("held").GetInt32()));

        // Never two at once: each task's containers ran after the previous task's had ended.
        await using var db = await TestEnvironment.PostgresAsync();
        var rows = await new PostgresRunStore(db, fixture.Env["PIPELINES_Schema"]!).GetProvenanceAsync(runId, CancellationToken.None);
        var spans = rows.GroupBy(r => r.TaskIndex).Select(g => (Start: g.Min(r => r.StartedAt), End: g.Max(r => r.FinishedAt))).OrderBy(s => s.Start).ToList();
        Assert.Equal(10, spans.Count);
        Assert.All(spans.Zip(spans.Skip(1)), pair => Assert.True(pair.Second.Start >= pair.First.End, $"a task started at {pair.Second.Start:O} while another ran until {pair.First.End:O}"));
    }

    private static int Quota(JsonElement run) =>
        run.GetProperty("counts").GetProperty("heldBecause").TryGetProperty("quota", out var n) ? n.GetInt32() : 0;
}
