using Npgsql;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;
using Pipelines.Triggers;

namespace Pipelines.Tests.Triggers;

/// <summary>
/// The behaviour of <see cref="ITriggerStore"/> that both stores share, run against each of them:
/// registration and its baseline, the ledger's exactly-once rules under racing callers, batches,
/// the checkpoint, the summaries, the trigger's lock, and one answer for what does not exist.
/// Each test has a store of its own.
/// </summary>
public abstract class TriggerStoreContract : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;
    private const int Callers = 8;

    protected ITriggerStore Store { get; private set; } = null!;

    /// <summary>A second store over the same data, as a second process has; null for a store that is one process's own.</summary>
    protected abstract ITriggerStore? Another { get; }

    protected abstract Task<ITriggerStore> CreateStoreAsync();

    /// <summary>What the tests see of the store: all of it, or one tenant's view (which must behave the same for its own).</summary>
    protected virtual TenantScope Scope => TenantScope.All;

    public virtual Task DisposeAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => Store = (await CreateStoreAsync()).For(Scope);

    private ITriggerStore Second => Another?.For(Scope) ?? Store;

    [Fact]
    public async Task A_new_registration_needs_a_baseline_until_it_is_completed_and_keeps_its_first_time()
    {
        Assert.True(await Store.UpsertAsync(Trigger("wf") with { RegisteredAt = Now.AddDays(-1) }, Now, None));
        Assert.False(await Store.IsBaselineDoneAsync("wf", None));
        Assert.True(await Store.UpsertAsync(Trigger("wf"), Now.AddMinutes(1), None));

        await Store.CompleteBaselineAsync("wf", "in/z.fastq", Now.AddMinutes(2), 7, None);

        Assert.True(await Store.IsBaselineDoneAsync("wf", None));
        Assert.False(await Store.UpsertAsync(Trigger("wf") with { Yaml = "changed", Settle = TimeSpan.FromSeconds(5) }, Now.AddMinutes(3), None));
        var read = await Store.GetAsync("wf", None);
        Assert.Equal(("changed", TimeSpan.FromSeconds(5), Now), (read!.Yaml, read.Settle, read.RegisteredAt));
        Assert.Equal(new TriggerPollState("in/z.fastq", Now.AddMinutes(2), 7), await Store.GetPollStateAsync("wf", None));
        var summary = Assert.Single(await Store.SummariesAsync(None));
        Assert.Equal(((DateTimeOffset?)Now.AddMinutes(2), "baseline", (long?)7), (summary.LastPollAt, summary.LastPollMode, summary.LastPollListed));
    }

    [Fact]
    public async Task A_registration_reads_back_as_given()
    {
        var given = Trigger("wf") with { BaseDirectory = "/data/wf", Overrides = ["output.uri=/tmp/x", "input.batch=2"], Include = ["**/*.fastq", "**/*.fq"], Exclude = ["tmp/**"] };

        await Store.UpsertAsync(given, Now, None);

        var read = await Store.GetAsync("wf", None);
        Assert.Equal((given.Name, given.Yaml, given.Source, given.BaseDirectory, given.Uri, given.Bucket, given.Prefix, given.Settle, Now), (read!.Name, read.Yaml, read.Source, read.BaseDirectory, read.Uri, read.Bucket, read.Prefix, read.Settle, read.RegisteredAt));
        Assert.Equal(given.Overrides, read.Overrides);
        Assert.Equal(given.Include, read.Include);
        Assert.Equal(given.Exclude, read.Exclude);
    }

    [Fact]
    public async Task A_changed_trigger_uri_drops_what_was_pending_and_starts_the_checkpoint_again()
    {
        await RegisterAsync("wf");
        await Store.RecordAsync("wf", "b", [Pending("in/a.fastq", "e1")], "watch", Now, None);
        await Store.SavePollAsync("wf", new PollOutcome(Now, "incremental", 3, 1, "in/a.fastq", null), full: false, None);
        await Store.SaveErrorAsync("wf", "boom", Now, None);

        Assert.True(await Store.UpsertAsync(Trigger("wf") with { Uri = "s3://b/elsewhere/", Prefix = "elsewhere/" }, Now.AddMinutes(1), None));

        Assert.False(await Store.IsBaselineDoneAsync("wf", None));
        Assert.Equal(new PendingObjects(0, null), await Store.PendingAsync("wf", None));
        Assert.Equal(new TriggerPollState(null, null, null), await Store.GetPollStateAsync("wf", None));
        var summary = Assert.Single(await Store.SummariesAsync(None));
        Assert.Equal((1L, 0L, (string?)null, (DateTimeOffset?)null, "s3://b/elsewhere/"), (summary.ObjectsSeen, summary.Pending, summary.LastError, summary.LastPollAt, summary.Uri));
        Assert.Null(await Store.ClaimAsync("wf", "r1", 10, Now.AddMinutes(1), None));
    }

    [Fact]
    public async Task Registrations_are_listed_by_ordinal_name_and_a_removal_takes_its_ledger_and_batches()
    {
        await RegisterAsync("b-wf");
        await RegisterAsync("a1");
        await RegisterAsync("a-z");
        await Store.RecordAsync("a1", "b", [Pending("in/x.fastq", "e1")], "watch", Now, None);
        var batch = await Store.ClaimAsync("a1", "r1", 10, Now, None);

        Assert.Equal(["a-z", "a1", "b-wf"], (await Store.ListAsync(None)).Select(t => t.Name));
        Assert.Equal(["a-z", "a1", "b-wf"], (await Store.SummariesAsync(None)).Select(t => t.Name));
        Assert.True(await Store.RemoveAsync("a1", None));
        Assert.False(await Store.RemoveAsync("a1", None));

        Assert.NotNull(batch);
        Assert.Null(await Store.GetAsync("a1", None));
        Assert.Empty(await Store.BatchObjectsAsync("r1", None));
        Assert.False(await Store.FinishBatchAsync("r1", started: true, null, Now, None));
        Assert.Equal(["a-z", "b-wf"], (await Store.ListAsync(None)).Select(t => t.Name));
        Assert.True(await Store.UpsertAsync(Trigger("a1"), Now, None));
        Assert.Equal(new PendingObjects(0, null), await Store.PendingAsync("a1", None));
    }

    [Fact]
    public async Task Reads_and_changes_of_a_workflow_that_is_not_registered_find_and_change_nothing()
    {
        Assert.Null(await Store.GetAsync("nope", None));
        Assert.False(await Store.IsBaselineDoneAsync("nope", None));
        Assert.Equal(0, await Store.RecordAsync("nope", "b", [Pending("in/a.fastq", "e1")], "event", Now, None));
        Assert.Equal(0, await Store.MarkDeletedAsync("nope", "b", "in/a.fastq", Now, None));
        Assert.Equal(new PendingObjects(0, null), await Store.PendingAsync("nope", None));
        Assert.Null(await Store.ClaimAsync("nope", "r1", 10, Now, None));
        Assert.Empty(await Store.OpenBatchesAsync("nope", None));
        Assert.Empty(await Store.BatchObjectsAsync("nope", None));
        Assert.False(await Store.FinishBatchAsync("nope", started: true, null, Now, None));
        Assert.Equal(new TriggerPollState(null, null, null), await Store.GetPollStateAsync("nope", None));
        await Store.CompleteBaselineAsync("nope", "k", Now, 1, None);
        await Store.SavePollAsync("nope", new PollOutcome(Now, "full", 1, 0, "k", null), full: true, None);
        await Store.SaveErrorAsync("nope", "boom", Now, None);
        Assert.Empty(await Store.ListAsync(None));
        Assert.Empty(await Store.SummariesAsync(None));
    }

    [Fact]
    public async Task A_version_is_recorded_once_however_often_it_is_reported_and_a_new_etag_is_new_work()
    {
        await RegisterAsync("wf");

        var first = await Store.RecordAsync("wf", "b", [Pending("in/a.fastq", "e1"), Pending("in/b.fastq", "e1")], "watch", Now, None);
        var again = await Store.RecordAsync("wf", "b", [Pending("in/a.fastq", "e1")], "event", Now.AddSeconds(5), None);
        var overwritten = await Store.RecordAsync("wf", "b", [Pending("in/a.fastq", "e2")], "event", Now.AddSeconds(6), None);
        var otherBucket = await Store.RecordAsync("wf", "c", [Pending("in/a.fastq", "e1")], "event", Now.AddSeconds(7), None);

        Assert.Equal((2, 0, 1, 1), (first, again, overwritten, otherBucket));
        Assert.Equal(new PendingObjects(4, Now.AddSeconds(7)), await Store.PendingAsync("wf", None));
    }

    [Fact]
    public async Task The_same_version_reported_by_many_callers_at_once_is_recorded_by_one()
    {
        await RegisterAsync("wf");

        var counts = await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() =>
            Store.RecordAsync("wf", "b", [Pending("in/a.fastq", "e1"), Pending($"in/own-{i}.fastq", "e1")], i % 2 == 0 ? "watch" : "event", Now, None))));

        Assert.Equal(Callers + 1, counts.Sum());
        Assert.Equal(Callers + 1, (await Store.PendingAsync("wf", None)).Count);
    }

    [Fact]
    public async Task Baseline_and_rejected_versions_are_never_work_and_a_pending_sighting_does_not_change_them()
    {
        await RegisterAsync("wf");
        await Store.RecordAsync("wf", "b", [(new LedgerObject("in/old.fastq", 1, "e1"), LedgerState.Baseline, null), (new LedgerObject("in/../x", 1, "e1"), LedgerState.Rejected, "escapes")], "register", Now, None);

        var again = await Store.RecordAsync("wf", "b", [Pending("in/old.fastq", "e1"), Pending("in/../x", "e1")], "watch", Now, None);

        Assert.Equal(0, again);
        Assert.Null(await Store.ClaimAsync("wf", "r1", 10, Now, None));
        var summary = Assert.Single(await Store.SummariesAsync(None));
        Assert.Equal((0L, 0L, 1L, 1L), (summary.ObjectsSeen, summary.Pending, summary.Baseline, summary.Rejected));
    }

    [Fact]
    public async Task A_version_deleted_before_its_run_gets_none_until_it_is_seen_again()
    {
        await RegisterAsync("wf");
        await Store.RecordAsync("wf", "b", [Pending("in/gone.fastq", "e1"), Pending("in/kept.fastq", "e1")], "event", Now, None);

        Assert.Equal(1, await Store.MarkDeletedAsync("wf", "b", "in/gone.fastq", Now, None));
        Assert.Equal(0, await Store.MarkDeletedAsync("wf", "b", "in/gone.fastq", Now, None));
        var cut = await Store.ClaimAsync("wf", "r1", 10, Now, None);
        var revived = await Store.RecordAsync("wf", "b", [Pending("in/gone.fastq", "e1")], "watch", Now.AddMinutes(1), None);
        Assert.Equal(0, await Store.MarkDeletedAsync("wf", "b", "in/kept.fastq", Now, None));

        Assert.Equal(["in/kept.fastq"], cut!.Objects.Select(o => o.Key));
        Assert.Equal(1, revived);
        Assert.Equal(new PendingObjects(1, Now.AddMinutes(1)), await Store.PendingAsync("wf", None));
        Assert.Equal(["in/kept.fastq"], (await Store.BatchObjectsAsync("r1", None)).Select(o => o.Key));
    }

    [Fact]
    public async Task A_claim_takes_the_oldest_pending_versions_up_to_the_limit_and_names_its_run()
    {
        await RegisterAsync("wf");
        await Store.RecordAsync("wf", "b", [Pending("in/c.fastq", "e1"), Pending("in/B.fastq", "e1"), Pending("in/a.fastq", "e1")], "watch", Now, None);
        await Store.RecordAsync("wf", "b", [Pending("in/0-late.fastq", "e1")], "watch", Now.AddSeconds(1), None);

        var first = await Store.ClaimAsync("wf", "r1", 2, Now.AddSeconds(30), None);
        var second = await Store.ClaimAsync("wf", "r2", 10, Now.AddSeconds(31), None);
        var third = await Store.ClaimAsync("wf", "r3", 10, Now.AddSeconds(32), None);

        Assert.Equal(("r1", "wf", Now.AddSeconds(30)), (first!.RunId, first.Workflow, first.ClaimedAt));
        Assert.Equal(["in/B.fastq", "in/a.fastq"], first.Objects.Select(o => o.Key));
        Assert.Equal(["in/0-late.fastq", "in/c.fastq"], second!.Objects.Select(o => o.Key));
        Assert.Null(third);
        Assert.Equal(new LedgerObject("in/B.fastq", 1, "e1"), first.Objects[0]);
        Assert.Equal(second.Objects, await Store.BatchObjectsAsync("r2", None));
        Assert.Equal(new PendingObjects(0, null), await Store.PendingAsync("wf", None));
    }

    [Fact]
    public async Task A_version_keeps_when_it_first_landed_and_a_batch_dates_from_its_oldest_landing_or_its_first_sighting()
    {
        await RegisterAsync("wf");
        await Store.RecordAsync("wf", "b", [Landed("in/a.fastq", Now.AddSeconds(-10)), Pending("in/b.fastq", "e1")], "watch", Now, None);
        await Store.RecordAsync("wf", "b", [Landed("in/a.fastq", Now.AddSeconds(-50)), Landed("in/c.fastq", Now.AddSeconds(-20))], "event", Now.AddSeconds(1), None);
        var landed = await Store.ClaimAsync("wf", "r1", 10, Now.AddSeconds(30), None);
        await Store.RecordAsync("wf", "b", [Pending("in/d.fastq", "e1")], "watch", Now.AddSeconds(40), None);
        var unknown = await Store.ClaimAsync("wf", "r2", 10, Now.AddSeconds(70), None);

        Assert.Equal((Now, Now.AddSeconds(-20)), (landed!.FirstSeenAt, landed.LandedAt));
        Assert.Equal([Now.AddSeconds(-10), null, Now.AddSeconds(-20)], landed.Objects.Select(o => o.LandedAt));
        Assert.Equal(landed.Objects, await Store.BatchObjectsAsync("r1", None));
        Assert.Equal((Now.AddSeconds(40), Now.AddSeconds(40)), (unknown!.FirstSeenAt, unknown.LandedAt));
    }

    [Fact]
    public async Task A_landing_with_an_offset_is_kept_as_the_same_instant()
    {
        // A sender's time with an offset (PostgreSQL's timestamptz takes UTC only through Npgsql): the store takes the instant, whatever its offset.
        var at = Now.AddSeconds(-30).ToOffset(TimeSpan.FromHours(2));
        await RegisterAsync("wf");
        await Store.RecordAsync("wf", "b", [Landed("in/a.fastq", at)], "event", Now, None);
        var batch = await Store.ClaimAsync("wf", "r1", 10, Now.AddSeconds(1), None);

        Assert.Equal(Now.AddSeconds(-30), batch!.LandedAt);
        Assert.Equal(Now.AddSeconds(-30), Assert.Single(batch.Objects).LandedAt);
    }

    [Fact]
    public async Task A_claim_for_a_run_id_that_has_a_batch_is_refused_and_claims_nothing()
    {
        await RegisterAsync("wf");
        await Store.RecordAsync("wf", "b", [Pending("in/a.fastq", "e1")], "watch", Now, None);
        await Store.ClaimAsync("wf", "r1", 10, Now, None);
        await Store.RecordAsync("wf", "b", [Pending("in/b.fastq", "e1")], "watch", Now, None);

        await Assert.ThrowsAsync<ArgumentException>(() => Store.ClaimAsync("wf", "r1", 10, Now, None));

        Assert.Equal(1, (await Store.PendingAsync("wf", None)).Count);
        Assert.Equal(["in/a.fastq"], (await Store.BatchObjectsAsync("r1", None)).Select(o => o.Key));
    }

    [Fact]
    public async Task Racing_claims_hand_every_pending_version_to_exactly_one_batch()
    {
        await RegisterAsync("wf");
        var objects = Enumerable.Range(0, 40).Select(i => Pending($"in/{i:D2}.fastq", "e" + i)).ToList();
        await Store.RecordAsync("wf", "b", objects, "watch", Now, None);
        var stores = new[] { Store, Second };

        var batches = await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() =>
            stores[i % 2].ClaimAsync("wf", $"run-{i}", 7, Now, None))));

        var claimed = batches.Where(b => b is not null).SelectMany(b => b!.Objects.Select(o => o.Key)).ToList();
        Assert.Equal(40, claimed.Count);
        Assert.Equal(40, claimed.Distinct().Count());
        Assert.All(batches.Where(b => b is not null), b => Assert.InRange(b!.Objects.Count, 1, 7));
        foreach (var b in batches.Where(b => b is not null))
        {
            Assert.Equal(b!.Objects, await Store.BatchObjectsAsync(b.RunId, None));
        }
    }

    [Fact]
    public async Task A_batch_stays_open_until_it_ends_once_started_or_failed()
    {
        await RegisterAsync("wf");
        await Store.RecordAsync("wf", "b", [Pending("in/a.fastq", "e1"), Pending("in/b.fastq", "e1")], "watch", Now, None);
        await Store.ClaimAsync("wf", "r-b", 1, Now.AddSeconds(2), None);
        await Store.ClaimAsync("wf", "r-a", 1, Now.AddSeconds(1), None);

        var open = await Store.OpenBatchesAsync("wf", None);
        var ends = await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() =>
            Store.FinishBatchAsync("r-a", started: i % 2 == 0, i % 2 == 0 ? null : "refused", Now.AddSeconds(i), None))));
        var failed = await Store.FinishBatchAsync("r-b", started: false, "image missing", Now, None);

        Assert.Equal([("r-a", "in/b.fastq"), ("r-b", "in/a.fastq")], open.Select(b => (b.RunId, b.Objects.Single().Key)));
        Assert.Equal(Now.AddSeconds(1), open[0].ClaimedAt);
        Assert.Single(ends, e => e);
        Assert.True(failed);
        Assert.Empty(await Store.OpenBatchesAsync("wf", None));
        var summary = Assert.Single(await Store.SummariesAsync(None));
        var aStarted = Array.IndexOf(ends, true) % 2 == 0;
        Assert.Equal(aStarted ? (1L, 1L) : (0L, 2L), (summary.RunsStarted, summary.BatchesFailed));
    }

    [Fact]
    public async Task The_summary_counts_the_ledger_and_names_the_last_run_started()
    {
        await RegisterAsync("wf");
        await Store.RecordAsync("wf", "b", [Pending("in/a.fastq", "e1"), Pending("in/b.fastq", "e1"), Pending("in/c.fastq", "e1"), Pending("in/d.fastq", "e1")], "watch", Now, None);
        await Store.RecordAsync("wf", "b", [(new LedgerObject("in/old.fastq", 1, "e1"), LedgerState.Baseline, null), (new LedgerObject("in/bad", 1, "e1"), LedgerState.Rejected, "why")], "register", Now, None);
        await Store.ClaimAsync("wf", "r1", 1, Now.AddSeconds(1), None);
        await Store.ClaimAsync("wf", "r2", 1, Now.AddSeconds(2), None);
        await Store.ClaimAsync("wf", "r3", 1, Now.AddSeconds(3), None);
        await Store.FinishBatchAsync("r1", started: true, null, Now.AddSeconds(10), None);
        await Store.FinishBatchAsync("r2", started: true, null, Now.AddSeconds(9), None);
        await Store.FinishBatchAsync("r3", started: false, "no", Now.AddSeconds(11), None);
        await Store.MarkDeletedAsync("wf", "b", "in/d.fastq", Now, None);
        await Store.SavePollAsync("wf", new PollOutcome(Now.AddMinutes(1), "incremental", 12, 0, null, null), full: false, None);
        await Store.SaveErrorAsync("wf", "S3 out of reach", Now.AddMinutes(2), None);

        var s = Assert.Single(await Store.SummariesAsync(None));

        Assert.Equal((4L, 0L, 1L, 1L), (s.ObjectsSeen, s.Pending, s.Baseline, s.Rejected));
        Assert.Equal((2L, 1L, "r2", (DateTimeOffset?)Now.AddSeconds(2)), (s.RunsStarted, s.BatchesFailed, s.LastRunId, s.LastRunAt));
        Assert.Equal(((DateTimeOffset?)Now.AddMinutes(1), "incremental", (long?)12), (s.LastPollAt, s.LastPollMode, s.LastPollListed));
        Assert.Equal(("S3 out of reach", (DateTimeOffset?)Now.AddMinutes(2)), (s.LastError, s.LastErrorAt));
        Assert.Equal(("wf", "s3://b/in/", TimeSpan.FromSeconds(30), Now), (s.Name, s.Uri, s.Settle, s.RegisteredAt));
    }

    [Fact]
    public async Task A_poll_keeps_the_checkpoint_it_did_not_move_and_only_a_full_listing_moves_the_reconciliation()
    {
        await RegisterAsync("wf");
        await Store.CompleteBaselineAsync("wf", "in/m.fastq", Now, 10, None);

        await Store.SavePollAsync("wf", new PollOutcome(Now.AddMinutes(1), "incremental", 2, 2, "in/p.fastq", null), full: false, None);
        var moved = await Store.GetPollStateAsync("wf", None);
        await Store.SavePollAsync("wf", new PollOutcome(Now.AddMinutes(2), "incremental", 0, 0, null, null), full: false, None);
        var kept = await Store.GetPollStateAsync("wf", None);
        await Store.SavePollAsync("wf", new PollOutcome(Now.AddMinutes(3), "reconcile", 40, 0, null, null), full: true, None);

        Assert.Equal(new TriggerPollState("in/p.fastq", Now, 10), moved);
        Assert.Equal(moved, kept);
        Assert.Equal(new TriggerPollState("in/p.fastq", Now.AddMinutes(3), 40), await Store.GetPollStateAsync("wf", None));
    }

    [Fact]
    public async Task A_cleared_error_keeps_the_time_of_the_last_one()
    {
        await RegisterAsync("wf");

        await Store.SaveErrorAsync("wf", "boom", Now, None);
        await Store.SaveErrorAsync("wf", null, Now.AddMinutes(1), None);

        var s = Assert.Single(await Store.SummariesAsync(None));
        Assert.Equal(((string?)null, (DateTimeOffset?)Now), (s.LastError, s.LastErrorAt));
    }

    [Fact]
    public async Task A_triggers_lock_is_held_by_one_caller_until_it_is_let_go()
    {
        await RegisterAsync("wf");
        var other = Second;

        var first = await Store.TryLockAsync("wf", None);
        var second = await other.TryLockAsync("wf", None);
        var elsewhere = await other.TryLockAsync("other-wf", None);
        await first!.DisposeAsync();
        var third = await other.TryLockAsync("wf", None);

        Assert.NotNull(first);
        Assert.Null(second);
        Assert.NotNull(elsewhere);
        Assert.NotNull(third);
        await elsewhere.DisposeAsync();
        await third.DisposeAsync();
    }

    [Fact]
    public async Task Of_many_callers_at_once_one_takes_a_triggers_lock()
    {
        var stores = new[] { Store, Second };

        var held = await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() => stores[i % 2].TryLockAsync("wf", None))));

        Assert.Single(held, h => h is not null);
        foreach (var h in held.Where(h => h is not null))
        {
            await h!.DisposeAsync();
        }
    }

    private static (LedgerObject Object, LedgerState State, string? Note) Pending(string key, string etag) => (new LedgerObject(key, 1, etag), LedgerState.Pending, null);

    private static (LedgerObject Object, LedgerState State, string? Note) Landed(string key, DateTimeOffset at) => (new LedgerObject(key, 1, "e1") { LandedAt = at }, LedgerState.Pending, null);

    private Task<bool> RegisterAsync(string name) => Store.UpsertAsync(Trigger(name), Now, None);

    private static RegisteredTrigger Trigger(string name) =>
        new(name, "version: 1", name + ".yaml", null, [], "s3://b/in/", "b", "in/", ["**/*.fastq"], [], TimeSpan.FromSeconds(30), Now);
}

/// <summary>The contract against the embedded mode's store, a new one per test.</summary>
[Unit]
public sealed class InMemoryTriggerStoreContractTests : TriggerStoreContract
{
    protected override ITriggerStore? Another => null;

    protected override Task<ITriggerStore> CreateStoreAsync() => Task.FromResult<ITriggerStore>(new InMemoryTriggerStore());
}

/// <summary>The contract against one tenant's view of the embedded mode's store.</summary>
[Unit]
public sealed class InMemoryTenantViewTriggerStoreContractTests : TriggerStoreContract
{
    protected override ITriggerStore? Another => null;

    protected override TenantScope Scope => TenantScope.Of(TenantId.Parse("lab-a", "test"));

    protected override Task<ITriggerStore> CreateStoreAsync() => Task.FromResult<ITriggerStore>(new InMemoryTriggerStore());
}

/// <summary>The contract against one tenant's view of PostgreSQL's store, a second process's view beside it.</summary>
[Integration]
public sealed class PostgresTenantViewTriggerStoreContractTests : PostgresTriggerStoreContractTests
{
    protected override TenantScope Scope => TenantScope.Of(TenantId.Parse("lab-a", "test"));
}

/// <summary>The contract against the real PostgreSQL that scripts/test starts, in a schema of each test's own; a second data source stands for a second process.</summary>
[Integration]
public class PostgresTriggerStoreContractTests : TriggerStoreContract
{
    private readonly string _schema = TestEnvironment.NewName("trs_");
    private NpgsqlDataSource _db = null!;
    private NpgsqlDataSource _second = null!;

    protected override ITriggerStore? Another => new PostgresTriggerStore(_second, _schema);

    protected override async Task<ITriggerStore> CreateStoreAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        _second = await TestEnvironment.PostgresAsync();
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        return new PostgresTriggerStore(_db, _schema);
    }

    public override async Task DisposeAsync()
    {
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _second.DisposeAsync();
        await _db.DisposeAsync();
    }
}
