using System.Net;
using System.Text;
using System.Text.Json;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Tenancy;

/// <summary>
/// lab-m's budget (docs/tenants.md, Budgets) on the quota server: a run's first tasks spend it,
/// the rest wait held by "budget" while the running ones finish, a synchronous invoke gets 429
/// naming Budget, an async one is accepted and held; the budget raised in the running server's
/// configuration file releases all of it, without a restart. Nothing is failed or dropped.
/// </summary>
public sealed partial class TenantQuotaTests
{
    private const int BudgetTasks = 12;

    [Fact]
    public async Task A_spent_budget_holds_new_work_lets_running_work_finish_and_a_raised_one_releases_it_all()
    {
        using var m = lab.Client(QuotaServer.KeyM);
        for (var i = 0; i < BudgetTasks; i++)
        {
            await lab.PutAsync($"lab-m/in/f{i:00}.txt", $"file {i}\n");
        }

        // One task per file, each a few seconds: the first ones' usage spends the budget while the others wait.
        var runId = await ServerFixture.SubmitAsync(m, $$"""
            version: 1
            name: spend
            input:
              uri: s3://{{lab.Bucket}}/lab-m/in/
              batch: 1
            steps:
              - name: spend
                image: pipelines-samples/pair-check:1
                command: ["busybox", "sh", "-c", "sleep 3; echo spent > /out/spent.tsv"]
                resources: { cpus: 0.1, memory: 64Mi, timeout: 2m }
                reuse: false
                outputs: ["*.tsv"]
            output:
              uri: s3://{{lab.Bucket}}/lab-m/out/
            """);

        // Held by the budget, and nothing in flight any more: what was running finished.
        var waiting = await ServerFixture.WaitForAsync(m, runId, r => Budget(r) > 0 && Counts(r, "running") == 0 && Counts(r, "queued") == Budget(r), TimeSpan.FromMinutes(3));
        var held = Budget(waiting);
        Assert.Equal(("running", 0, BudgetTasks - held), (waiting.GetProperty("state").GetString(), Counts(waiting, "failed"), Counts(waiting, "succeeded")));
        Assert.InRange(held, 1, BudgetTasks - 1);

        var status = await CliRunner.RunAsync(["status", runId, "--server", lab.Url, "--key", QuotaServer.KeyM]);
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains("held (waiting: the tenant's budget for this period is spent (Budget:Amount))", status.Stdout, StringComparison.Ordinal);
        var tasks = JsonDocument.Parse(await m.GetStringAsync($"/api/runs/{runId}/tasks?state=queued")).RootElement.GetProperty("items");
        var hold = tasks.EnumerateArray().First().GetProperty("hold");
        Assert.Equal("budget", hold.GetProperty("reason").GetString());
        Assert.Matches(@"^the tenant spent [0-9.]+ CR of its budget of 0.000001 CR for \d{4}-\d{2} \(Budget:Amount\)$", hold.GetProperty("detail").GetString());

        // The usage shows the budget spent.
        var budget = JsonDocument.Parse(await m.GetStringAsync("/api/usage")).RootElement.GetProperty("budgets").EnumerateArray().Single();
        Assert.Equal(("lab-m", "CR", true), (budget.GetProperty("tenant").GetString(), budget.GetProperty("currency").GetString(), budget.GetProperty("waits").GetBoolean()));
        Assert.True(budget.GetProperty("spent").GetDouble() > budget.GetProperty("amount").GetDouble(), budget.ToString());

        // A synchronous invoke is refused 429 naming the budget; an async one is accepted and held.
        using (var sync = await m.PostAsync("/api/functions/echo-m/invoke", new StringContent("x")))
        {
            var body = JsonDocument.Parse(await sync.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal((HttpStatusCode.TooManyRequests, "Budget"), (sync.StatusCode, body.GetProperty("quota").GetString()));
            Assert.InRange(sync.Headers.RetryAfter?.Delta ?? TimeSpan.Zero, TimeSpan.FromSeconds(1), Pipelines.Quotas.TenantBudgets.Recheck);
            Assert.Contains("budget", body.GetProperty("title").GetString(), StringComparison.Ordinal);
        }

        var (url, heldInvocation) = await lab.QueueUntilHeldAsync(m, "echo-m", "budget");
        Assert.StartsWith("held by the tenant's budget (the tenant spent ", heldInvocation.GetProperty("held").GetString(), StringComparison.Ordinal);

        // The operator raises the budget in the configuration file of the running server: everything waiting runs, nothing failed.
        await lab.SetBudgetOfLabMAsync("1000");
        var done = await ServerFixture.WaitForAsync(m, runId, r => r.GetProperty("state").GetString() is "succeeded" or "failed" or "cancelled", TimeSpan.FromMinutes(3));
        Assert.Equal(("succeeded", BudgetTasks, 0, 0), (done.GetProperty("state").GetString(), Counts(done, "succeeded"), Counts(done, "failed"), Counts(done, "held")));
        var ran = await lab.EventuallyAsync(m, url, i => i.GetProperty("status").GetString() is not ("queued" or "running"));
        Assert.Equal("succeeded", ran.GetProperty("status").GetString());
        using (var sync = await m.PostAsync("/api/functions/echo-m/invoke", new StringContent("x")))
        {
            Assert.Equal((HttpStatusCode.OK, "m"), (sync.StatusCode, await sync.Content.ReadAsStringAsync()));
        }

        var after = JsonDocument.Parse(await m.GetStringAsync("/api/usage")).RootElement.GetProperty("budgets").EnumerateArray().Single();
        Assert.Equal((1000.0, false), (after.GetProperty("amount").GetDouble(), after.GetProperty("waits").GetBoolean()));
    }

    [Fact]
    public async Task Sync_invokes_refused_by_a_spent_budget_are_recorded_refused_at_cost_0_and_leave_the_balance_as_it_was()
    {
        using var z = lab.Client(QuotaServer.KeyZ);
        const int Hammered = 12;
        for (var i = 0; i < Hammered; i++)
        {
            using var refused = await z.PostAsync("/api/functions/echo-z/invoke", new StringContent("x"));
            var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal((HttpStatusCode.TooManyRequests, "Budget"), (refused.StatusCode, problem.GetProperty("quota").GetString()));
        }

        // Every refusal is in the usage, refused, at cost 0 (the tenant's sheet prices an invocation at 1 CR).
        var usage = await lab.EventuallyAsync(z, "/api/usage", u => Refused(u).Records == Hammered);
        Assert.Equal((Hammered, 0.0), Refused(usage));
        Assert.Equal(0.0, usage.GetProperty("totals").EnumerateArray().Single().GetProperty("cost").GetDouble());

        // The balance is read again once its cache has run out: still the budget of zero, nothing spent.
        await Task.Delay(Pipelines.Quotas.TenantBudgets.CacheFor);
        var budget = JsonDocument.Parse(await z.GetStringAsync("/api/usage")).RootElement.GetProperty("budgets").EnumerateArray().Single();
        Assert.Equal(("lab-z", 0.0, 0.0, 0.0, true), (budget.GetProperty("tenant").GetString(), budget.GetProperty("amount").GetDouble(),
            budget.GetProperty("spent").GetDouble(), budget.GetProperty("balance").GetDouble(), budget.GetProperty("waits").GetBoolean()));

        static (long Records, double Cost) Refused(JsonElement usage)
        {
            var rows = usage.GetProperty("rows").EnumerateArray().Where(r => r.GetProperty("outcome").GetString() == "refused").ToList();
            return (rows.Sum(r => r.GetProperty("records").GetInt64()), rows.Sum(r => r.GetProperty("cost").GetDouble()));
        }
    }

    private static int Counts(JsonElement run, string state) => run.GetProperty("counts").GetProperty(state).GetInt32();

    private static int Budget(JsonElement run) =>
        run.GetProperty("counts").GetProperty("heldBecause").TryGetProperty("budget", out var n) ? n.GetInt32() : 0;
}
