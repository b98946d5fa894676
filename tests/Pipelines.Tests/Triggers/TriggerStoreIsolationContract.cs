using Npgsql;
using Pipelines.Hosting;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;
using Pipelines.Triggers;

namespace Pipelines.Tests.Triggers;

/// <summary>
/// Tenants in the triggers' store, against both homes: with lab-b's workflow registered, with a
/// ledger, a batch and a checkpoint, every verb of lab-a's view answers as it does for a workflow
/// that is not registered, and changes nothing of lab-b's; a name is a tenant's, so both may
/// register "wf" side by side; the whole store lists every tenant's.
/// </summary>
public abstract class TriggerStoreIsolationContract : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly TenantId LabA = TenantId.Parse("lab-a", "test");
    private static readonly TenantId LabB = TenantId.Parse("lab-b", "test");

    protected ITriggerStore Store { get; private set; } = null!;

    protected abstract Task<ITriggerStore> CreateStoreAsync();

    public virtual Task DisposeAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => Store = await CreateStoreAsync();

    private ITriggerStore A => Store.For(TenantScope.Of(LabA));

    private ITriggerStore B => Store.For(TenantScope.Of(LabB));

    /// <summary>Every verb of a view on one workflow name and one run id, as what it answers; the changing verbs last.</summary>
    private static async Task<List<string>> AnswersAsync(ITriggerStore view, string workflow, string runId)
    {
        var answers = new List<string>
        {
            $"get {await view.GetAsync(workflow, None)}",
            $"baseline {await view.IsBaselineDoneAsync(workflow, None)}",
            $"pending {await view.PendingAsync(workflow, None)}",
            $"open {(await view.OpenBatchesAsync(workflow, None)).Count}",
            $"objects {(await view.BatchObjectsAsync(runId, None)).Count}",
            $"poll {await view.GetPollStateAsync(workflow, None)}",
            $"listed {(await view.ListAsync(None)).Count(t => t.Name == workflow)}",
            $"summaries {(await view.SummariesAsync(None)).Count(t => t.Name == workflow)}",
            $"record {await view.RecordAsync(workflow, "b", [(new LedgerObject("in/new.fastq", 1, "e9"), LedgerState.Pending, null)], "event", Now, None)}",
            $"deleted {await view.MarkDeletedAsync(workflow, "b", "in/a.fastq", Now, None)}",
            $"claim {await view.ClaimAsync(workflow, runId + "-again", 10, Now, None)}",
            $"finish {await view.FinishBatchAsync(runId, started: true, null, Now, None)}",
        };
        await view.CompleteBaselineAsync(workflow, "in/zzz", Now, 99, None);
        await view.SavePollAsync(workflow, new PollOutcome(Now, "full", 5, 0, "in/zzz", null), full: true, None);
        await view.SaveErrorAsync(workflow, "boom", Now, None);
        answers.Add($"removed {await view.RemoveAsync(workflow, None)}");
        return answers;
    }

    [Fact]
    public async Task Every_verb_of_a_view_answers_for_another_tenants_workflow_as_for_one_not_registered_and_changes_nothing()
    {
        await SetUpAsync(B, "wf", "run-b");
        var before = await SnapshotAsync(B, "wf", "run-b");

        var onTheirs = await AnswersAsync(A, "wf", "run-b");
        var onMissing = await AnswersAsync(A, "nope", "run-none");

        Assert.Equal(onMissing, onTheirs.Select(a => a.Replace("run-b", "run-none", StringComparison.Ordinal)));
        Assert.Equal(before, await SnapshotAsync(B, "wf", "run-b"));
    }

    [Fact]
    public async Task Two_tenants_register_the_same_name_and_keep_apart_ledgers_batches_checkpoints_and_locks()
    {
        Assert.True(await A.UpsertAsync(Trigger("wf") with { Uri = "s3://a/in/" }, Now, None));
        Assert.True(await B.UpsertAsync(Trigger("wf") with { Uri = "s3://b/in/" }, Now, None));
        await A.RecordAsync("wf", "a", [(new LedgerObject("in/1.fastq", 1, "e1"), LedgerState.Pending, null)], "watch", Now, None);
        await B.CompleteBaselineAsync("wf", "in/k", Now, 3, None);

        Assert.Equal(("s3://a/in/", LabA), ((await A.GetAsync("wf", None))!.Uri, (await A.GetAsync("wf", None))!.Tenant));
        Assert.Equal(("s3://b/in/", LabB), ((await B.GetAsync("wf", None))!.Uri, (await B.GetAsync("wf", None))!.Tenant));
        Assert.Equal(1, (await A.PendingAsync("wf", None)).Count);
        Assert.Equal(0, (await B.PendingAsync("wf", None)).Count);
        Assert.False(await A.IsBaselineDoneAsync("wf", None));
        Assert.True(await B.IsBaselineDoneAsync("wf", None));

        await using (var lockA = await A.TryLockAsync("wf", None))
        await using (var lockB = await B.TryLockAsync("wf", None))
        {
            Assert.NotNull(lockA);
            Assert.NotNull(lockB);
            Assert.Null(await A.TryLockAsync("wf", None));
        }

        var batch = await A.ClaimAsync("wf", "run-a", 10, Now, None);
        Assert.Equal(["in/1.fastq"], batch!.Objects.Select(o => o.Key));
        await B.RecordAsync("wf", "b", [(new LedgerObject("in/2.fastq", 1, "e2"), LedgerState.Pending, null)], "watch", Now, None);

        // Run ids are the engine's, unique across tenants: a claim under lab-a's batch's id claims nothing.
        await Assert.ThrowsAsync<ArgumentException>(() => B.ClaimAsync("wf", "run-a", 10, Now, None));
        Assert.True(await A.RemoveAsync("wf", None));
        Assert.NotNull(await B.GetAsync("wf", None));
        Assert.Equal(1, (await B.PendingAsync("wf", None)).Count);
    }

    [Fact]
    public async Task A_view_stamps_its_tenant_and_the_whole_store_lists_every_tenants_by_name()
    {
        await A.UpsertAsync(Trigger("wf") with { Tenant = LabB }, Now, None);
        await B.UpsertAsync(Trigger("wf"), Now, None);
        await Store.UpsertAsync(Trigger("only-default"), Now, None);

        Assert.Equal([("wf", LabA)], (await A.ListAsync(None)).Select(t => (t.Name, t.Tenant)));
        Assert.Equal([("wf", LabA)], (await A.SummariesAsync(None)).Select(t => (t.Name, t.Tenant)));
        Assert.Equal([("only-default", TenantId.Default), ("wf", LabA), ("wf", LabB)], (await Store.ListAsync(None)).Select(t => (t.Name, t.Tenant)));
        Assert.Equal([("only-default", TenantId.Default), ("wf", LabA), ("wf", LabB)], (await Store.SummariesAsync(None)).Select(t => (t.Name, t.Tenant)));

        // The whole store names workflows in the default tenant, where everything from before tenants is.
        Assert.Null(await Store.GetAsync("wf", None));
        Assert.NotNull(await Store.For(TenantScope.Of(TenantId.Default)).GetAsync("only-default", None));
        Assert.Null(await A.GetAsync("only-default", None));
    }

    [Fact]
    public void A_view_is_itself_for_its_tenant_or_all_and_cannot_be_widened_to_another_tenant()
    {
        var a = A;

        Assert.Same(Store, Store.For(TenantScope.All));
        Assert.Same(a, a.For(TenantScope.All));
        Assert.Same(a, a.For(TenantScope.Of(LabA)));
        Assert.Throws<InvalidOperationException>(() => a.For(TenantScope.Of(LabB)));
    }

    /// <summary>A registered workflow with a baseline, a pending, a deleted and a claimed object, an open batch, a poll and an error.</summary>
    private static async Task SetUpAsync(ITriggerStore view, string workflow, string runId)
    {
        await view.UpsertAsync(Trigger(workflow), Now, None);
        await view.CompleteBaselineAsync(workflow, "in/base", Now, 1, None);
        await view.RecordAsync(workflow, "b", [
            (new LedgerObject("in/a.fastq", 1, "e1"), LedgerState.Pending, null),
            (new LedgerObject("in/c.fastq", 1, "e3"), LedgerState.Pending, null)], "watch", Now, None);
        await view.ClaimAsync(workflow, runId, 1, Now, None);
        await view.SavePollAsync(workflow, new PollOutcome(Now, "incremental", 2, 2, "in/c.fastq", null), full: false, None);
        await view.SaveErrorAsync(workflow, "earlier", Now, None);
    }

    private static async Task<string> SnapshotAsync(ITriggerStore view, string workflow, string runId) => string.Join(
        " | ",
        await view.GetAsync(workflow, None) is { } t ? $"{t.Name} {t.Uri} {t.Tenant}" : "none",
        await view.IsBaselineDoneAsync(workflow, None),
        await view.PendingAsync(workflow, None),
        string.Join(",", (await view.OpenBatchesAsync(workflow, None)).Select(b => b.RunId)),
        string.Join(",", (await view.BatchObjectsAsync(runId, None)).Select(o => o.Key)),
        await view.GetPollStateAsync(workflow, None),
        string.Join(",", await view.SummariesAsync(None)));

    private static RegisteredTrigger Trigger(string name) =>
        new(name, "version: 1", name + ".yaml", null, [], "s3://b/in/", "b", "in/", ["**/*.fastq"], [], TimeSpan.FromSeconds(30), Now);
}

/// <summary>Tenants in the embedded mode's triggers' store.</summary>
[Unit]
public sealed class InMemoryTriggerStoreIsolationTests : TriggerStoreIsolationContract
{
    protected override Task<ITriggerStore> CreateStoreAsync() => Task.FromResult<ITriggerStore>(new InMemoryTriggerStore());
}

/// <summary>Tenants in PostgreSQL's triggers' store, in a schema of each test's own.</summary>
[Integration]
public sealed class PostgresTriggerStoreIsolationTests : TriggerStoreIsolationContract
{
    private readonly string _schema = TestEnvironment.NewName("tri_");
    private NpgsqlDataSource _db = null!;

    protected override async Task<ITriggerStore> CreateStoreAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        return new PostgresTriggerStore(_db, _schema);
    }

    public override async Task DisposeAsync()
    {
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _db.DisposeAsync();
    }
}
