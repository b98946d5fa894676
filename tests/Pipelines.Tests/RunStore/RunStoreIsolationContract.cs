using Pipelines.Planning;
using Pipelines.RunStore;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.RunStore;

/// <summary>
/// Tenants in the run store, against both homes: with lab-b's run present, every verb of lab-a's
/// view answers as it does for a run that does not exist, and changes nothing of lab-b's; what a
/// view creates is its tenant's; the whole store sees every tenant and can list one.
/// </summary>
public abstract class RunStoreIsolationContract
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly TenantId LabA = TenantId.Parse("lab-a", "test");
    private static readonly TenantId LabB = TenantId.Parse("lab-b", "test");

    protected abstract IRunStore Store { get; }

    private IRunStore A => Store.For(TenantScope.Of(LabA));

    private IRunStore B => Store.For(TenantScope.Of(LabB));

    /// <summary>Every verb of a view on one run id, as what it answers (a thrown exception as its type and message).</summary>
    private static async Task<List<string>> AnswersAsync(IRunStore view, string runId)
    {
        var outcome = new TaskOutcome(TaskState.Succeeded, 0, null, Now);
        var answers = new List<string>
        {
            $"run {await view.GetRunAsync(runId, None)}",
            $"tasks page {(await view.QueryTasksAsync(runId, new TaskQuery(), None)).Total}",
            $"task {await view.GetTaskAsync(runId, 0, None)}",
            $"tasks {(await view.GetTasksAsync(runId, None)).Count}",
            $"counts {await view.CountTasksAsync(runId, None)}",
            $"claim {await view.ClaimTaskAsync(runId, 0, "w", Now, Now.AddMinutes(1), None)}",
            $"hold {await view.HoldTaskAsync(runId, 0, new TaskHold(HoldReasons.OwnerLoad, "busy", "w", Now), None)}",
            $"renew {await view.RenewLeaseAsync(runId, 0, "w", Now, Now.AddMinutes(1), None)}",
            $"gather {await view.TryBeginGatherAsync(runId, "job", None)}",
            $"provenance {(await view.GetProvenanceAsync(runId, None)).Count} {(await view.GetProvenanceAsync(runId, [0], None)).Count} {(await view.ReadProvenanceAsync(runId, None).ToListAsync()).Count}",
            await ThrownAsync(() => view.CommitTaskAsync(runId, 0, outcome, [], None)),
            await ThrownAsync(() => view.SplitTaskAsync(runId, 0, outcome, [], [], None)),
            await ThrownAsync(() => view.RequestStopAsync(runId, "stop", None)),
            await ThrownAsync(() => view.FinishRunAsync(runId, RunState.Failed, "no", Now, None)),
        };
        return answers;
    }

    private static async Task<string> ThrownAsync(Func<Task> act)
    {
        try
        {
            await act();
            return "no exception";
        }
        catch (UnknownRunException e)
        {
            return $"{e.GetType().Name}: {e.Message}";
        }
    }

    [Fact]
    public async Task Every_verb_of_a_view_answers_for_another_tenants_run_as_for_a_missing_one_and_changes_nothing()
    {
        var theirs = NewId();
        var missing = NewId();
        await B.CreateRunAsync(Run(theirs), Tasks(theirs, 2), None);
        var before = await Store.GetRunAsync(theirs, None);
        var tasksBefore = await Store.GetTasksAsync(theirs, None);

        var onTheirs = await AnswersAsync(A, theirs);
        var onMissing = await AnswersAsync(A, missing);

        Assert.Equal(onMissing, onTheirs.Select(a => a.Replace(theirs, missing, StringComparison.Ordinal)));
        Assert.Equal(before, await Store.GetRunAsync(theirs, None));
        Assert.Equal(tasksBefore.Select(t => (t.State, t.Hold, t.Worker)), (await Store.GetTasksAsync(theirs, None)).Select(t => (t.State, t.Hold, t.Worker)));
    }

    [Fact]
    public async Task A_view_answers_for_its_own_run_as_the_whole_store_does()
    {
        var ours = NewId();
        await A.CreateRunAsync(Run(ours), Tasks(ours, 2), None);

        Assert.Equal(await Store.GetRunAsync(ours, None), await A.GetRunAsync(ours, None));
        Assert.Equal(0, await A.ClaimTaskAsync(ours, 0, "w", Now, Now.AddMinutes(1), None));
        var (committed, remaining) = await A.CommitTaskAsync(ours, 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [], None);
        Assert.Equal((true, 1), (committed, remaining));
        Assert.Equal(1, (await Store.CountTasksAsync(ours, None)).Succeeded);
        var unknownTask = await Assert.ThrowsAsync<UnknownRunException>(() => A.CommitTaskAsync(ours, 7, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [], None));
        Assert.Equal(new UnknownRunException(ours, 7).Message, unknownTask.Message);
    }

    [Fact]
    public async Task A_view_stamps_its_tenant_on_what_it_creates_and_lists_only_its_own_runs()
    {
        var a1 = NewId();
        var a2 = NewId();
        var b1 = NewId();
        await A.CreateRunAsync(Run(a1) with { Tenant = LabB, SubmittedBy = "alice (lab-a)" }, Tasks(a1, 1), None);
        Assert.Equal(1, await A.CreateRunAsync(Run(a2), Stream(Tasks(a2, 1)), None));
        await B.CreateRunAsync(Run(b1), Tasks(b1, 1), None);

        var stored = await Store.GetRunAsync(a1, None);
        Assert.Equal((LabA, "alice (lab-a)"), (stored!.Tenant, stored.SubmittedBy));
        Assert.Equal(LabA, (await Store.GetRunAsync(a2, None))!.Tenant);

        var mine = await A.QueryRunsAsync(new RunQuery(Limit: 1000), None);
        Assert.Contains(a1, mine.Items.Select(r => r.RunId));
        Assert.Contains(a2, mine.Items.Select(r => r.RunId));
        Assert.DoesNotContain(b1, mine.Items.Select(r => r.RunId));
        Assert.All(mine.Items, r => Assert.Equal(LabA, r.Tenant));
        Assert.Equal(mine.Total, (await A.QueryRunsAsync(new RunQuery(Limit: 1000) { Tenant = LabB }, None)).Total);

        var all = await Store.QueryRunsAsync(new RunQuery(Limit: 1000), None);
        Assert.Contains(b1, all.Items.Select(r => r.RunId));
        Assert.Contains(a1, all.Items.Select(r => r.RunId));
        var onlyB = await Store.QueryRunsAsync(new RunQuery(Limit: 1000) { Tenant = LabB }, None);
        Assert.Equal([LabB], onlyB.Items.Select(r => r.Tenant).Distinct());
        Assert.Equal(onlyB.Total, onlyB.Items.Count);
    }

    [Fact]
    public async Task The_same_run_id_is_refused_across_tenants_as_it_is_within_one()
    {
        var id = NewId();
        await B.CreateRunAsync(Run(id), Tasks(id, 1), None);

        await Assert.ThrowsAsync<DuplicateRunException>(() => A.CreateRunAsync(Run(id), Tasks(id, 1), None));
        Assert.Equal(LabB, (await Store.GetRunAsync(id, None))!.Tenant);
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

    [Fact]
    public async Task Runs_created_without_a_view_belong_to_the_default_tenant()
    {
        var id = NewId();
        await Store.CreateRunAsync(Run(id), Tasks(id, 1), None);

        Assert.Equal(TenantId.Default, (await Store.GetRunAsync(id, None))!.Tenant);
        Assert.Null(await A.GetRunAsync(id, None));
        Assert.NotNull(await Store.For(TenantScope.Of(TenantId.Default)).GetRunAsync(id, None));
    }

    private static string NewId() => TestEnvironment.NewName("r");

    private static RunRecord Run(string id) =>
        new(id, "wf", "version: 1", "{}", "/tmp/out/" + id + "/", RunState.Running, 0, 0, Now, null, null, null);

    private static List<TaskRecord> Tasks(string id, int count) => Enumerable.Range(0, count).Select(i => new TaskRecord(
        id, i, $"id{i:D4}", TaskState.Queued, [new InputFile($"in/f{i}.fastq", 10 + i, "abc")],
        new Dictionary<string, string> { ["sample"] = $"s{i}" }, 0, null, null, null, null, null)).ToList();

    private static async IAsyncEnumerable<TaskRecord> Stream(IEnumerable<TaskRecord> tasks)
    {
        foreach (var t in tasks)
        {
            yield return t;
        }

        await Task.CompletedTask;
    }
}

/// <summary>Tenants in the embedded mode's store.</summary>
[Unit]
public sealed class InMemoryRunStoreIsolationTests : RunStoreIsolationContract
{
    protected override IRunStore Store { get; } = new InMemoryRunStore();
}

/// <summary>Tenants in PostgreSQL's run store, in a schema of the class's own.</summary>
[Integration]
public sealed class PostgresRunStoreIsolationTests(PostgresRunStoreContractTests.Schema schema) : RunStoreIsolationContract, IClassFixture<PostgresRunStoreContractTests.Schema>
{
    protected override IRunStore Store => schema.Store;
}

/// <summary>
/// The run store contract, unchanged, against one tenant's view of PostgreSQL's store: a view
/// behaves as the store for its own runs, whatever the scope.
/// </summary>
[Integration]
public sealed class TenantViewRunStoreContractTests(PostgresRunStoreContractTests.Schema schema) : RunStoreContract, IClassFixture<PostgresRunStoreContractTests.Schema>
{
    protected override IRunStore Store => schema.Store.For(TenantScope.Of(TenantId.Parse("lab-a", "test")));
}
