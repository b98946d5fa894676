using Npgsql;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;
using Pipelines.Usage;

namespace Pipelines.Tests.Usage;

/// <summary>
/// The behaviour of <see cref="IUsageStore"/> that both homes share, and how the run store writes
/// the ledger (a commit's record, a lost delivery's at the next claim), run against each home.
/// Tenants and run ids are new per test, so one schema serves the class.
/// </summary>
public abstract class UsageStoreContract
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 10, 30, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;

    private protected abstract IUsageStore Usage { get; }

    /// <summary>A run store that writes into <see cref="Usage"/>.</summary>
    protected abstract IRunStore Runs { get; }

    [Fact]
    public async Task A_record_is_kept_once_however_often_and_however_concurrently_it_is_written()
    {
        var tenant = NewTenant();
        var run = NewId();
        var first = Task(tenant, run, 0, 1, Now, cpu: 2);

        var written = await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, 8).Select(i => Usage.RecordAsync(first with { CpuSeconds = i == 0 ? 2 : 100 + i }, None)));
        var again = await Usage.RecordAsync(first with { Outcome = UsageOutcomes.Failed }, None);

        Assert.Equal(1, written.Count(w => w));
        Assert.False(again);
        var kept = Assert.Single(await Usage.ForRunAsync(run, None));
        Assert.Equal(UsageOutcomes.Succeeded, kept.Outcome);
        Assert.Equal(1, (await Usage.AggregateAsync(new UsageQuery(RunId: run), None)).Sum(r => r.Figures.Records));
    }

    [Fact]
    public async Task A_record_reads_back_with_every_figure_and_a_run_s_records_come_by_task_then_delivery()
    {
        var tenant = NewTenant();
        var run = NewId();
        var full = Task(tenant, run, 1, 2, Now, cpu: 1.5) with
        {
            PeakMemoryBytes = 123456789,
            ReservedMemoryBytes = 1L << 30,
            GbSeconds = 4.25,
            BytesIn = 1000,
            BytesOut = 2000,
            Harvested = true,
            Reason = "why",
        };
        await Usage.RecordAsync(full, None);
        await Usage.RecordAsync(Task(tenant, run, 1, 1, Now, cpu: null) with { Outcome = UsageOutcomes.Vacated }, None);
        await Usage.RecordAsync(Task(tenant, run, 0, 1, Now, cpu: 3), None);

        var read = await Usage.ForRunAsync(run, None);

        Assert.Equal([(0, 1), (1, 1), (1, 2)], read.Select(r => (r.TaskIndex!.Value, r.Delivery!.Value)));
        Assert.Equal(full, read[2]);
        Assert.Null(read[1].CpuSeconds);
        Assert.Empty(await Usage.ForRunAsync(NewId(), None));
    }

    [Fact]
    public async Task Aggregates_sum_figures_by_bucket_tenant_kind_outcome_and_class()
    {
        var tenant = NewTenant();
        var run = NewId();
        var day1 = new DateTimeOffset(2026, 12, 1, 9, 15, 0, TimeSpan.Zero);
        var day1Later = new DateTimeOffset(2026, 12, 1, 23, 59, 59, 999, TimeSpan.Zero);
        var day2 = new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero);
        await Usage.RecordAsync(Task(tenant, run, 0, 1, day1, cpu: 1) with { GbSeconds = 0.5, BytesIn = 10, BytesOut = 20 }, None);
        await Usage.RecordAsync(Task(tenant, run, 1, 1, day1Later, cpu: 2) with { GbSeconds = 1.5, BytesIn = 1, BytesOut = 2 }, None);
        await Usage.RecordAsync(Task(tenant, run, 2, 1, day1, cpu: null) with { Outcome = UsageOutcomes.Vacated }, None);
        await Usage.RecordAsync(Task(tenant, run, 3, 1, day1, cpu: 4) with { Harvested = true }, None);
        await Usage.RecordAsync(Task(tenant, run, 4, 1, day2, cpu: 8), None);
        await Usage.RecordAsync(Invocation(tenant, "fn", day1, cpu: 0.25), None);

        var byDay = await Usage.AggregateAsync(new UsageQuery { Tenant = tenant }, None);

        Assert.Equal(
            [
                (day1.Date, UsageKinds.Invocation, UsageOutcomes.Succeeded, false, 1L, 0.25),
                (day1.Date, UsageKinds.Task, UsageOutcomes.Succeeded, false, 2L, 3.0),
                (day1.Date, UsageKinds.Task, UsageOutcomes.Succeeded, true, 1L, 4.0),
                (day1.Date, UsageKinds.Task, UsageOutcomes.Vacated, false, 1L, 0.0),
                (day2.Date, UsageKinds.Task, UsageOutcomes.Succeeded, false, 1L, 8.0),
            ],
            byDay.Select(r => (r.Bucket.UtcDateTime, r.Kind, r.Outcome, r.Harvested, r.Figures.Records, r.Figures.CpuSeconds)));
        var sums = byDay[1].Figures;
        Assert.Equal((2.0, 11L, 22L, 2.0), (sums.GbSeconds, sums.BytesIn, sums.BytesOut, sums.WallSeconds));
        Assert.All(byDay, r => Assert.Equal(tenant, r.Tenant));

        var byHour = await Usage.AggregateAsync(new UsageQuery(From: day1, To: day2, By: UsageBucket.Hour) { Tenant = tenant }, None);
        Assert.Equal([day1.AddMinutes(-15), day1.AddMinutes(-15), day1.AddMinutes(-15), day1.AddMinutes(-15), new DateTimeOffset(2026, 12, 1, 23, 0, 0, TimeSpan.Zero)], byHour.Select(r => r.Bucket));
        Assert.Equal(5, byHour.Sum(r => r.Figures.Records));

        var ofFunction = await Usage.AggregateAsync(new UsageQuery(Function: "fn") { Tenant = tenant }, None);
        Assert.Equal((UsageKinds.Invocation, 1L), (Assert.Single(ofFunction).Kind, ofFunction[0].Figures.Records));
    }

    [Fact]
    public async Task Two_tenants_records_never_mix_in_their_views()
    {
        var (a, b) = (NewTenant(), NewTenant());
        var (runA, runB) = (NewId(), NewId());
        await Usage.For(TenantScope.Of(a)).RecordAsync(Task(b, runA, 0, 1, Now, cpu: 1), None); // a view stamps its own tenant
        await Usage.RecordAsync(Task(b, runB, 0, 1, Now, cpu: 10), None);
        await Usage.RecordAsync(Invocation(b, "shared-name", Now, cpu: 20), None);
        await Usage.RecordAsync(Invocation(a, "shared-name", Now, cpu: 2), None);
        var viewA = Usage.For(TenantScope.Of(a));
        var viewB = Usage.For(TenantScope.Of(b));

        Assert.Equal(a, Assert.Single(await Usage.ForRunAsync(runA, None)).Tenant);
        Assert.Empty(await viewA.ForRunAsync(runB, None));
        Assert.Empty(await viewB.ForRunAsync(runA, None));
        Assert.Equal(3.0, (await viewA.AggregateAsync(new UsageQuery(), None)).Sum(r => r.Figures.CpuSeconds));
        Assert.Equal(30.0, (await viewB.AggregateAsync(new UsageQuery(), None)).Sum(r => r.Figures.CpuSeconds));
        Assert.Equal(2.0, (await viewA.AggregateAsync(new UsageQuery(Function: "shared-name"), None)).Sum(r => r.Figures.CpuSeconds));
        Assert.All(await viewA.RecordsAsync(new UsageQuery(), None).ToListAsync(), r => Assert.Equal(a, r.Tenant));
        Assert.Equal(2, await viewB.RecordsAsync(new UsageQuery(), None).CountAsync());

        // Admin's filter on the whole store is the view's answer; a view cannot be widened to another tenant.
        Assert.Equal(3.0, (await Usage.AggregateAsync(new UsageQuery { Tenant = a }, None)).Sum(r => r.Figures.CpuSeconds));
        Assert.Throws<InvalidOperationException>(() => viewA.For(TenantScope.Of(b)));
    }

    [Fact]
    public async Task Records_stream_by_end_and_id_within_the_query()
    {
        var tenant = NewTenant();
        var run = NewId();
        await Usage.RecordAsync(Task(tenant, run, 2, 1, Now.AddMinutes(2), cpu: 1), None);
        await Usage.RecordAsync(Task(tenant, run, 0, 1, Now, cpu: 1), None);
        await Usage.RecordAsync(Task(tenant, run, 1, 1, Now.AddMinutes(1), cpu: 1), None);

        var all = await Usage.RecordsAsync(new UsageQuery { Tenant = tenant }, None).ToListAsync();
        var window = await Usage.RecordsAsync(new UsageQuery(From: Now.AddMinutes(1), To: Now.AddMinutes(2)) { Tenant = tenant }, None).ToListAsync();

        Assert.Equal([0, 1, 2], all.Select(r => r.TaskIndex!.Value));
        Assert.Equal(1, Assert.Single(window).TaskIndex);
    }

    [Fact]
    public async Task A_commit_writes_its_delivery_s_record_once_and_a_second_delivery_s_commit_writes_nothing()
    {
        var (run, tenant) = await CreateRunAsync();
        Assert.Equal(0, await Runs.ClaimTaskAsync(run, 0, "w1", Now, Now.AddSeconds(45), None));
        var record = Task(tenant, run, 0, 1, Now.AddSeconds(10), cpu: 1);

        var (committed, _) = await Runs.CommitTaskAsync(run, 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now.AddSeconds(10)) { Usage = record }, [], None);
        var (again, _) = await Runs.CommitTaskAsync(run, 0, new TaskOutcome(TaskState.Failed, 1, "late", Now.AddSeconds(11)) { Usage = record with { Id = UsageRecord.TaskId(run, 0, 2), Delivery = 2 } }, [], None);

        Assert.True(committed);
        Assert.False(again);
        Assert.Equal(record, Assert.Single(await Usage.ForRunAsync(run, None)));
    }

    [Fact]
    public async Task A_claim_over_an_expired_lease_records_the_lost_delivery_vacated_up_to_its_last_renewal_and_counts_it()
    {
        var (run, tenant) = await CreateRunAsync();
        Assert.Equal(0, await Runs.ClaimTaskAsync(run, 0, "w1", Now, Now.AddSeconds(45), None));
        Assert.True(await Runs.RenewLeaseAsync(run, 0, "w1", Now, Now.AddSeconds(75), None)); // renewed at 30 s, then killed

        Assert.Equal(1, await Runs.ClaimTaskAsync(run, 0, "w2", Now.AddSeconds(80), Now.AddSeconds(125), None));

        var lost = Assert.Single(await Usage.ForRunAsync(run, None));
        Assert.Equal(
            (UsageRecord.TaskId(run, 0, 1), tenant, 1, "w1", Now, Now.AddSeconds(30), 30.0, UsageOutcomes.Vacated, UsageOutcomes.WorkerLost, (double?)null),
            (lost.Id, lost.Tenant, lost.Delivery!.Value, lost.Worker, lost.StartedAt, lost.EndedAt, lost.WallSeconds, lost.Outcome, lost.Reason, lost.CpuSeconds));

        // The second delivery ends the task: one record each, succeeded and vacated.
        var ended = Task(tenant, run, 0, 2, Now.AddSeconds(90), cpu: 1) with { StartedAt = Now.AddSeconds(80) };
        await Runs.CommitTaskAsync(run, 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now.AddSeconds(90)) { Usage = ended }, [], None);
        Assert.Equal([UsageOutcomes.Vacated, UsageOutcomes.Succeeded], (await Usage.ForRunAsync(run, None)).Select(r => r.Outcome));
    }

    [Fact]
    public async Task A_delivery_that_recorded_its_vacate_is_not_recorded_again_by_the_next_claim()
    {
        var (run, tenant) = await CreateRunAsync();
        Assert.Equal(0, await Runs.ClaimTaskAsync(run, 0, "w1", Now, Now.AddSeconds(45), None));
        var vacated = Task(tenant, run, 0, 1, Now.AddSeconds(20), cpu: 3) with { Outcome = UsageOutcomes.Vacated, StartedAt = Now };
        Assert.True(await Usage.RecordAsync(vacated, None));
        Assert.True(await Runs.RenewLeaseAsync(run, 0, "w1", Now, Now.AddSeconds(20), None)); // released

        Assert.Equal(1, await Runs.ClaimTaskAsync(run, 0, "w2", Now.AddSeconds(21), Now.AddSeconds(66), None));
        Assert.Equal(vacated, Assert.Single(await Usage.ForRunAsync(run, None)));

        // Its own lease then lapses too: the third delivery records the second as lost.
        Assert.Equal(2, await Runs.ClaimTaskAsync(run, 0, "w3", Now.AddSeconds(70), Now.AddSeconds(115), None));
        Assert.Equal([(1, UsageOutcomes.Vacated, (string?)null), (2, UsageOutcomes.Vacated, UsageOutcomes.WorkerLost)], (await Usage.ForRunAsync(run, None)).Select(r => (r.Delivery!.Value, r.Outcome, r.Reason == UsageOutcomes.WorkerLost ? r.Reason : null)));
    }

    private async Task<(string Run, TenantId Tenant)> CreateRunAsync()
    {
        var id = NewId();
        var tenant = NewTenant();
        await Runs.CreateRunAsync(
            new RunRecord(id, "wf", "version: 1", "{}", "/tmp/out/" + id + "/", RunState.Running, 0, 0, Now, null, null, null) { Tenant = tenant },
            [new TaskRecord(id, 0, "id0000", TaskState.Queued, [], new Dictionary<string, string>(), 0, null, null, null, null, null)],
            None);
        return (id, tenant);
    }

    private static UsageRecord Task(TenantId tenant, string run, int index, int delivery, DateTimeOffset ended, double? cpu) =>
        new(UsageRecord.TaskId(run, index, delivery), tenant, UsageKinds.Task, ended.AddSeconds(-1), ended, UsageOutcomes.Succeeded)
        {
            RunId = run,
            TaskIndex = index,
            Delivery = delivery,
            Worker = "w1",
            WallSeconds = 1,
            CpuSeconds = cpu,
        };

    private static UsageRecord Invocation(TenantId tenant, string function, DateTimeOffset ended, double cpu) =>
        new(Guid.CreateVersion7().ToString(), tenant, UsageKinds.Invocation, ended.AddMilliseconds(-20), ended, UsageOutcomes.Succeeded)
        {
            Function = function,
            Version = 1,
            Route = "stable",
            WallSeconds = 0.02,
            CpuSeconds = cpu,
        };

    private static string NewId() => "u" + Guid.NewGuid().ToString("N")[..12];

    private static TenantId NewTenant() => TenantId.Parse("t" + Guid.NewGuid().ToString("N")[..10], "test");
}

/// <summary>The contract against the embedded mode's ledger, shared with its run store as the engine shares it.</summary>
[Unit]
public sealed class InMemoryUsageStoreContractTests : UsageStoreContract
{
    private readonly InMemoryUsageStore _usage = new();

    public InMemoryUsageStoreContractTests() => Runs = new InMemoryRunStore(usage: _usage);

    private protected override IUsageStore Usage => _usage;

    protected override IRunStore Runs { get; }
}

/// <summary>The contract against the real PostgreSQL that scripts/test starts, in a schema of this class's own.</summary>
[Integration]
public sealed class PostgresUsageStoreContractTests(PostgresUsageStoreContractTests.Schema schema) : UsageStoreContract, IClassFixture<PostgresUsageStoreContractTests.Schema>
{
    private protected override IUsageStore Usage => schema.Usage;

    protected override IRunStore Runs => schema.Runs;

    /// <summary>A fresh schema for the class, dropped when its tests have run.</summary>
    public sealed class Schema : IAsyncLifetime
    {
        private NpgsqlDataSource _db = null!;
        private readonly string _name = TestEnvironment.NewName("t_");

        internal IUsageStore Usage { get; private set; } = null!;

        public IRunStore Runs { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            _db = await TestEnvironment.PostgresAsync();
            await new PostgresSchema(_db, _name).CreateAsync(CancellationToken.None);
            Usage = new PostgresUsageStore(_db, _name);
            Runs = new PostgresRunStore(_db, _name);
        }

        public async Task DisposeAsync()
        {
            await using (var cmd = _db.CreateCommand($"DROP SCHEMA {_name} CASCADE"))
            {
                await cmd.ExecuteNonQueryAsync();
            }

            await _db.DisposeAsync();
        }
    }
}
