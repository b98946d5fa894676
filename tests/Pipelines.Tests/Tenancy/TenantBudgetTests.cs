using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Time.Testing;
using Pipelines.Quotas;
using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.Tests.Tenancy;

/// <summary>
/// A tenant's budget (docs/tenants.md, Budgets): its settings as the operator writes them, the
/// period it is in, and its balance, the amount less the priced usage that ended in the period.
/// </summary>
[Unit]
public sealed class TenantBudgetTests
{
    private static readonly TenantId LabA = TenantId.Parse("lab-a", "test");
    private static readonly TenantId LabB = TenantId.Parse("lab-b", "test");

    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    private static TenantOptions Read(params (string Key, string Value)[] values) =>
        TenantOptions.From(Config([("Tenants:lab-a:Output", "s3://lab-a/"), ("Tenants:lab-b:Output", "s3://lab-b/"), .. values]), _ => false);

    [Fact]
    public void A_budget_is_read_over_the_defaults_key_by_key_and_unset_is_none()
    {
        var options = Read(("Tenancy:Defaults:Budget:Amount", "10"), ("Tenancy:Defaults:Budget:Period", "total"), ("Tenants:lab-a:Budget:Amount", "2.5"),
            ("Tenants:lab-b:Budget:Period", "month"));

        Assert.Equal((2.5, "total"), (options.Settings(LabA).Budget.Amount!.Value, options.Settings(LabA).Budget.Period));
        Assert.Equal((10.0, "month"), (options.Settings(LabB).Budget.Amount!.Value, options.Settings(LabB).Budget.Period));
        Assert.Equal((10.0, "total"), (options.Settings(TenantId.Default).Budget.Amount!.Value, options.Settings(TenantId.Default).Budget.Period));
        Assert.Null(Read().Settings(LabA).Budget.Amount);
        Assert.Equal("month", Read().Settings(LabA).Budget.Period);
    }

    [Theory]
    [InlineData("Tenants:lab-a:Budget:Amount", "-1", "Tenants:lab-a:Budget:Amount")]
    [InlineData("Tenants:lab-a:Budget:Amount", "lots", "Tenants:lab-a:Budget:Amount")]
    [InlineData("Tenants:lab-a:Budget:Period", "week", "Tenants:lab-a:Budget:Period")]
    [InlineData("Tenancy:Defaults:Budget:Period", "year", "Tenancy:Defaults:Budget:Period")]
    public void A_budget_value_that_cannot_be_used_is_refused_naming_its_key(string key, string value, string named)
    {
        var message = Assert.Throws<PipelinesException>(() => Read((key, value))).Message;
        Assert.StartsWith(named, message, StringComparison.Ordinal);
        Assert.Contains($"'{value}'", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2026-12-07T04:44:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")]
    [InlineData("2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")]
    [InlineData("2026-11-30T23:59:59.999Z", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")]
    [InlineData("2028-02-29T12:00:00+05:00", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z")]
    [InlineData("2026-12-01T02:00:00+05:00", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")]
    public void A_month_is_the_calendar_month_in_UTC(string now, string from, string until)
    {
        var (f, u) = TenantBudgets.PeriodOf(BudgetSettings.Month, DateTimeOffset.Parse(now, System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal((DateTimeOffset.Parse(from, System.Globalization.CultureInfo.InvariantCulture), DateTimeOffset.Parse(until, System.Globalization.CultureInfo.InvariantCulture)), (f!.Value, u!.Value));
        Assert.Equal((null, null), TenantBudgets.PeriodOf(BudgetSettings.Total, DateTimeOffset.UtcNow));
    }

    [Fact]
    public void A_refusal_waits_until_the_periods_end_but_no_longer_than_the_recheck_and_at_least_a_second()
    {
        var now = new DateTimeOffset(2026, 12, 31, 23, 59, 55, TimeSpan.Zero);
        BudgetBalance Spent(DateTimeOffset? until) => new(LabA, 1, "month", null, until, 2, "EUR");

        Assert.Equal(TimeSpan.FromSeconds(5), TenantBudgets.RetryAfter(Spent(new DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.Zero)), now));
        Assert.Equal(TenantBudgets.Recheck, TenantBudgets.RetryAfter(Spent(now.AddDays(3)), now));
        Assert.Equal(TenantBudgets.Recheck, TenantBudgets.RetryAfter(Spent(null), now));
        Assert.Equal(TimeSpan.FromSeconds(1), TenantBudgets.RetryAfter(Spent(now.AddMilliseconds(10)), now));
    }

    [Fact]
    public async Task The_balance_is_the_amount_less_the_priced_usage_that_ended_in_the_month_of_this_tenant_only()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 4, 44, 0, TimeSpan.Zero));
        var ledger = new InMemoryUsageStore();
        var prices = PriceSheets.From(Config(("Prices:CpuSecond", "0.5"), ("Prices:GbSecond", "0.25"), ("Prices:Invocation", "0.1"), ("Prices:HarvestedDiscount", "0.5"),
            ("Prices:Currency", "CR"), ("Tenants:lab-b:Prices:CpuSecond", "100")));
        var budgets = new TenantBudgets(ledger, prices, Read(("Tenants:lab-a:Budget:Amount", "10")), time);

        // In December: 4 CPU-s and 4 GB-s (3), harvested 2 CPU-s (0.5), an invocation of nothing (0.1): 3.6.
        // Two refused invocations are free: they never ran.
        ledger.Add(Delivery("a1", LabA, new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero), cpu: 4, gb: 4));
        ledger.Add(Delivery("a2", LabA, new DateTimeOffset(2026, 12, 6, 0, 0, 0, TimeSpan.Zero), cpu: 2, gb: 0) with { Harvested = true });
        ledger.Add(new UsageRecord("i1", LabA, UsageKinds.Invocation, time.GetUtcNow().AddSeconds(-2), time.GetUtcNow().AddSeconds(-1), UsageOutcomes.Succeeded));
        ledger.Add(new UsageRecord("i2", LabA, UsageKinds.Invocation, time.GetUtcNow().AddSeconds(-2), time.GetUtcNow().AddSeconds(-1), UsageOutcomes.Refused));
        ledger.Add(new UsageRecord("i3", LabA, UsageKinds.Invocation, time.GetUtcNow().AddSeconds(-2), time.GetUtcNow().AddSeconds(-1), UsageOutcomes.Refused) { WallSeconds = 0.001 });

        // Not counted: ended in November, or lab-b's.
        ledger.Add(Delivery("a0", LabA, new DateTimeOffset(2026, 11, 30, 23, 59, 59, TimeSpan.Zero), cpu: 1000, gb: 0));
        ledger.Add(Delivery("b1", LabB, new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero), cpu: 1000, gb: 0));

        var balance = (await budgets.BalanceAsync(LabA, CancellationToken.None))!;
        Assert.Equal((10.0, 3.6, "2026-12", "CR", false), (balance.Amount, Math.Round(balance.Spent, 9), balance.PeriodName, balance.Currency, balance.IsSpent));
        Assert.Equal(6.4, Math.Round(balance.Balance, 9));
        Assert.Equal("the tenant spent 3.6 CR of its budget of 10 CR for 2026-12 (Budget:Amount)", balance.Detail);
        Assert.Null(await budgets.BalanceAsync(LabB, CancellationToken.None));
        Assert.False(budgets.Has(LabB));

        // Spent past the amount: kept for a few seconds (the ledger is not read per request), then seen.
        ledger.Add(Delivery("a3", LabA, time.GetUtcNow(), cpu: 20, gb: 0));
        Assert.False((await budgets.BalanceAsync(LabA, CancellationToken.None))!.IsSpent);
        time.Advance(TenantBudgets.CacheFor);
        var spent = (await budgets.BalanceAsync(LabA, CancellationToken.None))!;
        Assert.Equal((13.6, true), (Math.Round(spent.Spent, 9), spent.IsSpent));
        var refusal = budgets.Refusal(spent)!;
        Assert.Equal(("Budget", "budget", TenantBudgets.Recheck), (refusal.Quota, refusal.What, refusal.RetryAfter));
        Assert.StartsWith("the tenant spent 13.6 CR of its budget of 10 CR for 2026-12 (Budget:Amount): new work waits", refusal.Detail, StringComparison.Ordinal);

        // A new month: whole again (the cached balance ends with its period).
        time.SetUtcNow(new DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var january = (await budgets.BalanceAsync(LabA, CancellationToken.None))!;
        Assert.Equal((0.0, 10.0, "2027-01", false), (january.Spent, january.Balance, january.PeriodName, january.IsSpent));
        Assert.Null(budgets.Refusal(january));
    }

    [Fact]
    public async Task Refused_invocations_cost_nothing_so_a_spent_budget_hammered_by_refusals_keeps_its_balance()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 4, 44, 0, TimeSpan.Zero));
        var ledger = new InMemoryUsageStore();
        var prices = PriceSheets.From(Config(("Prices:Invocation", "1"), ("Prices:CpuSecond", "1")));
        var budgets = new TenantBudgets(ledger, prices, Read(("Tenants:lab-a:Budget:Amount", "0")), time);
        var before = (await budgets.BalanceAsync(LabA, CancellationToken.None))!;

        for (var i = 0; i < 50; i++)
        {
            ledger.Add(new UsageRecord($"i{i}", LabA, UsageKinds.Invocation, time.GetUtcNow(), time.GetUtcNow(), UsageOutcomes.Refused) { Function = "f" });
        }

        time.Advance(TenantBudgets.CacheFor);
        var after = (await budgets.BalanceAsync(LabA, CancellationToken.None))!;
        Assert.Equal((0.0, 0.0, true), (after.Spent, after.Balance, after.IsSpent));
        Assert.Equal(before.Balance, after.Balance);

        // Still in the ledger as refused, each at cost 0; any other outcome pays its invocation.
        var rows = await ledger.AggregateAsync(new UsageQuery(), CancellationToken.None);
        var refused = Assert.Single(rows);
        Assert.Equal((UsageOutcomes.Refused, 50L, 0.0), (refused.Outcome, refused.Figures.Records, prices.For(LabA).Cost(refused)));
        Assert.Equal(50.0, prices.For(LabA).Cost(refused with { Outcome = UsageOutcomes.Failed }));
    }

    [Fact]
    public async Task A_total_budget_counts_every_record_of_the_tenant_and_zero_is_spent()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 4, 44, 0, TimeSpan.Zero));
        var ledger = new InMemoryUsageStore();
        var prices = PriceSheets.From(Config(("Prices:CpuSecond", "1")));
        var budgets = new TenantBudgets(ledger, prices, Read(("Tenants:lab-a:Budget:Amount", "5"), ("Tenants:lab-a:Budget:Period", "total"), ("Tenants:lab-b:Budget:Amount", "0")), time);
        ledger.Add(Delivery("a1", LabA, new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero), cpu: 2, gb: 0));
        ledger.Add(Delivery("a2", LabA, new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero), cpu: 2, gb: 0));

        var a = (await budgets.BalanceAsync(LabA, CancellationToken.None))!;
        Assert.Equal(("total", (DateTimeOffset?)null, (DateTimeOffset?)null, 4.0, 1.0), (a.PeriodName, a.From, a.Until, a.Spent, a.Balance));

        // A budget of zero is spent before anything ran: nothing of the tenant's starts.
        Assert.True((await budgets.BalanceAsync(LabB, CancellationToken.None))!.IsSpent);
    }

    [Fact]
    public async Task A_changed_configuration_raises_a_budget_in_place_but_a_bad_value_or_other_tenants_keep_the_budgets_as_they_were()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 4, 44, 0, TimeSpan.Zero));
        var log = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        (string, string)[] tenants = [("Tenants:lab-a:Output", "s3://lab-a/"), ("Tenants:lab-b:Output", "s3://lab-b/")];
        using var budgets = new TenantBudgets(new InMemoryUsageStore(), PriceSheets.None, Read(("Tenants:lab-a:Budget:Amount", "0")), time);
        Assert.True((await budgets.BalanceAsync(LabA, CancellationToken.None))!.IsSpent);

        // Raised: taken at once, the kept balance dropped.
        Assert.True(budgets.Reload(Config([.. tenants, ("Tenants:lab-a:Budget:Amount", "5")]), _ => false, log));
        Assert.Equal((5.0, false), ((await budgets.BalanceAsync(LabA, CancellationToken.None))!.Amount, (await budgets.BalanceAsync(LabA, CancellationToken.None))!.IsSpent));

        // A value that cannot be used, or tenants other than those the process started with: nothing changes.
        Assert.False(budgets.Reload(Config([.. tenants, ("Tenants:lab-a:Budget:Amount", "lots")]), _ => false, log));
        Assert.False(budgets.Reload(Config([.. tenants, ("Tenants:lab-c:Output", "s3://lab-c/"), ("Tenants:lab-a:Budget:Amount", "0")]), _ => false, log));
        Assert.False(budgets.Reload(Config(("Tenants:lab-a:Budget:Amount", "0")), _ => false, log));
        time.Advance(TenantBudgets.CacheFor);
        Assert.Equal(5.0, (await budgets.BalanceAsync(LabA, CancellationToken.None))!.Amount);
    }

    [Fact]
    public async Task A_server_configuration_file_read_with_reloadOnChange_follows_an_edit_and_a_half_written_file_is_no_crash()
    {
        using var temp = new Pipelines.Tests.Support.TempFolder();
        var file = temp.Combine("pipelines.json");
        await File.WriteAllTextAsync(file, """{"Tenants": {"lab-a": {"Output": "s3://lab-a/", "Budget": {"Amount": "1"}}}}""");
        var config = Pipelines.Hosting.EngineHost.Configuration(file, reloadOnChange: true);
        using var budgets = new TenantBudgets(new InMemoryUsageStore(), PriceSheets.None, TenantOptions.From(config, _ => false), TimeProvider.System);
        budgets.Follow(config, _ => false, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

        // Caught half written: read again (the reload's event), not thrown on the watcher's thread; the budget stays.
        var reread = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (config.GetReloadToken().RegisterChangeCallback(_ => reread.TrySetResult(), null))
        {
            await File.WriteAllTextAsync(file, """{"Tenants": {"lab-a": {"Output": "s3": """);
            await reread.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }

        Assert.Equal(1.0, (await budgets.BalanceAsync(LabA, CancellationToken.None))!.Amount);
        await File.WriteAllTextAsync(file, """{"Tenants": {"lab-a": {"Output": "s3://lab-a/", "Budget": {"Amount": "1000"}}}}""");

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await budgets.BalanceAsync(LabA, CancellationToken.None))!.Amount != 1000)
        {
            Assert.True(DateTime.UtcNow < deadline, "the budget was not read again within 30 s of the file's change");
            await Task.Delay(50);
        }

        Assert.Equal("1000", config["Tenants:lab-a:Budget:Amount"]);

        // Read once (a CLI command): a file that cannot be read stops it, naming the file.
        await File.WriteAllTextAsync(file, "{ not json");
        Assert.Contains("pipelines.json", Assert.ThrowsAny<Exception>(() => Pipelines.Hosting.EngineHost.Configuration(file)).Message, StringComparison.Ordinal);
        Assert.Contains("pipelines.json", Assert.ThrowsAny<Exception>(() => Pipelines.Hosting.EngineHost.Configuration(file, reloadOnChange: true)).Message, StringComparison.Ordinal);
    }

    private static UsageRecord Delivery(string id, TenantId tenant, DateTimeOffset ended, double cpu, double gb) =>
        new(id, tenant, UsageKinds.Task, ended.AddSeconds(-1), ended, UsageOutcomes.Succeeded) { CpuSeconds = cpu, GbSeconds = gb, WallSeconds = 1, RunId = "r-" + id, TaskIndex = 0, Delivery = 1 };
}
