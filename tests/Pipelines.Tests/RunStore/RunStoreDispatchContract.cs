using Pipelines.Planning;
using Pipelines.RunStore;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.RunStore;

/// <summary>
/// The dispatcher's verbs of <see cref="IRunStore"/> (pending, release, quota holds, cancel of
/// pending tasks, stuck releases, kept uses), the same in both homes. Every test has a tenant of
/// its own, so a store shared by the class's tests gives each the only work of its tenant.
/// </summary>
public abstract class RunStoreDispatchContract
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;

    private readonly TenantId _tenant = TenantId.Parse(TestEnvironment.NewName("t"), "test");
    private readonly string _tag = TestEnvironment.NewName("r");

    protected abstract IRunStore Store { get; }

    [Fact]
    public async Task New_tasks_are_pending_and_are_released_oldest_run_first_in_task_order()
    {
        var older = await CreateAsync("1", 3);
        var newer = await CreateAsync("2", 2);
        Assert.Equal(new TenantLoad(_tenant, 5, 0), await LoadAsync());

        var first = await Store.ReleaseTasksAsync(_tenant, 4, Now, None);

        Assert.Equal([new(older, 0), new(older, 1), new(older, 2), new TaskKey(newer, 0)], first);
        Assert.Equal(new TenantLoad(_tenant, 1, 4), await LoadAsync());
        Assert.Equal([new TaskKey(newer, 1)], await Store.ReleaseTasksAsync(_tenant, 10, Now, None));
        Assert.Empty(await Store.ReleaseTasksAsync(_tenant, 10, Now, None));
    }

    [Fact]
    public async Task A_released_task_is_in_flight_while_it_runs_and_not_once_it_ends()
    {
        var id = await CreateAsync("1", 2);
        await Store.ReleaseTasksAsync(_tenant, 2, Now, None);

        await Store.ClaimTaskAsync(id, 0, "w", Now, Now.AddMinutes(1), None);
        var running = await LoadAsync();
        await Store.CommitTaskAsync(id, 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [], None);

        Assert.Equal(new TenantLoad(_tenant, 0, 2), running);
        Assert.Equal(new TenantLoad(_tenant, 0, 1), await LoadAsync());
    }

    [Fact]
    public async Task Of_the_tasks_asked_about_those_released_or_running_are_in_flight_and_not_the_pending_or_ended_ones()
    {
        var id = await CreateAsync("1", 5);
        await Store.ReleaseTasksAsync(_tenant, 3, Now, None);
        await Store.ClaimTaskAsync(id, 1, "w", Now, Now.AddMinutes(1), None);
        await Store.ClaimTaskAsync(id, 2, "w", Now, Now.AddMinutes(1), None);
        await Store.CommitTaskAsync(id, 2, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [], None);

        // 0 released and queued, 1 running, 2 ended, 3 pending; 4 is not asked about, the last key names no task.
        var asked = new TaskKey[] { new(id, 3), new(id, 2), new(id, 1), new(id, 0), new(_tag + "-none", 0) };
        Assert.Equal([new TaskKey(id, 0), new TaskKey(id, 1)], await Store.InFlightAsync(asked, None));
        Assert.Empty(await Store.InFlightAsync([], None));
    }

    [Fact]
    public async Task Another_tenants_release_takes_none_of_these_tasks()
    {
        await CreateAsync("1", 2);

        Assert.Empty(await Store.ReleaseTasksAsync(TenantId.Parse(TestEnvironment.NewName("t"), "test"), 10, Now, None));
        Assert.Equal(new TenantLoad(_tenant, 2, 0), await LoadAsync());
    }

    [Fact]
    public async Task A_quota_hold_marks_the_pending_tasks_once_and_a_release_or_a_clear_lifts_it()
    {
        var id = await CreateAsync("1", 4);
        var hold = new TaskHold(HoldReasons.Quota, "2 of 2 running", "dispatcher", Now);

        Assert.Equal(4, await Store.HoldPendingAsync(_tenant, hold, None));
        Assert.Equal(0, await Store.HoldPendingAsync(_tenant, hold with { Since = Now.AddMinutes(1) }, None));
        Assert.Equal(4, (await Store.CountTasksAsync(id, None)).HeldBecause[HoldReasons.Quota]);
        Assert.Equal(hold, (await Store.GetTaskAsync(id, 3, None))!.Hold);

        await Store.ReleaseTasksAsync(_tenant, 1, Now, None);
        Assert.Null((await Store.GetTaskAsync(id, 0, None))!.Hold);
        Assert.Equal(3, (await Store.CountTasksAsync(id, None)).HeldBecause[HoldReasons.Quota]);

        Assert.Equal(3, await Store.ClearPendingHoldAsync(_tenant, HoldReasons.Quota, None));
        Assert.Equal(0, (await Store.CountTasksAsync(id, None)).Held);
    }

    [Fact]
    public async Task A_release_keeps_a_hold_for_another_reason_until_the_claim()
    {
        var id = await CreateAsync("1", 1);
        var owner = new TaskHold(HoldReasons.OwnerLoad, "owner busy", "w1", Now);
        await Store.HoldTaskAsync(id, 0, owner, None);

        await Store.ReleaseTasksAsync(_tenant, 1, Now, None);

        Assert.Equal(0, await Store.ClearPendingHoldAsync(_tenant, HoldReasons.OwnerLoad, None));
        Assert.Equal(owner, (await Store.GetTaskAsync(id, 0, None))!.Hold);
    }

    [Fact]
    public async Task A_task_handed_back_is_pending_again_and_a_running_one_is_left_as_it_is_and_named()
    {
        var id = await CreateAsync("1", 2);
        await Store.ReleaseTasksAsync(_tenant, 2, Now, None);
        await Store.ClaimTaskAsync(id, 1, "w", Now, Now.AddMinutes(1), None);

        var notQueued = await Store.MarkPendingAsync(id, [0, 1, 7], None);

        Assert.Equal([1], notQueued);
        Assert.Equal(new TenantLoad(_tenant, 1, 1), await LoadAsync());
        Assert.Equal([new TaskKey(id, 0)], await Store.ReleaseTasksAsync(_tenant, 5, Now, None));
    }

    [Fact]
    public async Task The_counts_follow_every_change_and_a_task_handed_back_below_the_released_ones_is_released_first()
    {
        var id = await CreateAsync("1", 5);
        var first = await Store.ReleaseTasksAsync(_tenant, 3, Now, None);
        await Store.ClaimTaskAsync(id, 0, "w", Now, Now.AddMinutes(1), None);
        await Store.CommitTaskAsync(id, 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [], None);
        await Store.MarkPendingAsync(id, [1], None);
        var handedBack = await LoadAsync();
        var again = await Store.ReleaseTasksAsync(_tenant, 2, Now, None);

        // A delivery of a task never released (a vacated task's job, straight to Hangfire) claims it.
        await Store.ClaimTaskAsync(id, 4, "w", Now, Now.AddMinutes(1), None);

        Assert.Equal([new(id, 0), new(id, 1), new TaskKey(id, 2)], first);
        Assert.Equal(new TenantLoad(_tenant, 3, 1), handedBack);
        Assert.Equal([new(id, 1), new TaskKey(id, 3)], again);
        Assert.Equal(new TenantLoad(_tenant, 0, 4), await LoadAsync());
        Assert.Empty(await Store.ReleaseTasksAsync(_tenant, 5, Now, None));
    }

    [Fact]
    public async Task A_vacated_task_stays_in_flight_through_its_next_delivery_and_an_ended_task_is_never_released_again()
    {
        var id = await CreateAsync("1", 2);
        await Store.ReleaseTasksAsync(_tenant, 2, Now, None);
        var first = await Store.ClaimTaskAsync(id, 0, "w", Now, Now.AddMinutes(1), None);

        // A vacate: the lease released (renewed to the past) and the task handed back to the queue while still running.
        await Store.RenewLeaseAsync(id, 0, "w", Now, Now, None);
        var handedBack = await Store.MarkPendingAsync(id, [0], None);
        var vacatedLoad = await LoadAsync();
        var second = await Store.ClaimTaskAsync(id, 0, "w2", Now.AddSeconds(1), Now.AddMinutes(1), None);
        await Store.CommitTaskAsync(id, 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now.AddSeconds(2)), [], None);
        await Store.CommitTaskAsync(id, 1, new TaskOutcome(TaskState.Succeeded, 0, null, Now.AddSeconds(2)), [], None);

        Assert.Equal((0, 1), (first, second));
        Assert.Equal([0], handedBack);
        Assert.Equal(new TenantLoad(_tenant, 0, 2), vacatedLoad);
        Assert.Null(await LoadAsync());
        Assert.Empty(Mine(await Store.ReleaseStuckAsync(Now.AddHours(1), Now.AddHours(1), 10_000, None)));
        Assert.Equal([0, 1], await Store.MarkPendingAsync(id, [0, 1], None));
        Assert.Empty(await Store.ReleaseTasksAsync(_tenant, 5, Now, None));
    }

    [Fact]
    public async Task Split_children_are_pending()
    {
        var id = await CreateAsync("1", 1);
        await Store.ReleaseTasksAsync(_tenant, 1, Now, None);
        await Store.ClaimTaskAsync(id, 0, "w", Now, Now.AddMinutes(1), None);

        var (_, children, _) = await Store.SplitTaskAsync(id, 0, new TaskOutcome(TaskState.Failed, 1, "batch", Now), [], [NewTask(id, 0), NewTask(id, 1)], None);

        Assert.Equal(new TenantLoad(_tenant, 2, 0), await LoadAsync());
        Assert.Equal(children.Select(c => new TaskKey(id, c)), await Store.ReleaseTasksAsync(_tenant, 5, Now, None));
    }

    [Fact]
    public async Task Only_a_task_released_before_the_cut_and_still_queued_is_released_again()
    {
        var id = await CreateAsync("1", 3);
        await Store.ReleaseTasksAsync(_tenant, 2, Now, None);
        await Store.ClaimTaskAsync(id, 1, "w", Now, Now.AddMinutes(1), None);

        var notYet = Mine(await Store.ReleaseStuckAsync(Now, Now.AddMinutes(3), 10_000, None));
        var stuck = Mine(await Store.ReleaseStuckAsync(Now.AddMinutes(1), Now.AddMinutes(3), 10_000, None));
        var again = Mine(await Store.ReleaseStuckAsync(Now.AddMinutes(1), Now.AddMinutes(4), 10_000, None));

        Assert.Empty(notYet);
        Assert.Equal([new TaskKey(id, 0)], stuck);
        Assert.Empty(again);
    }

    [Fact]
    public async Task Pending_tasks_of_a_stopping_run_are_not_released_and_a_cancel_ends_them_at_once()
    {
        var id = await CreateAsync("1", 5);
        await Store.ReleaseTasksAsync(_tenant, 2, Now, None);
        await Store.ClaimTaskAsync(id, 0, "w", Now, Now.AddMinutes(1), None);
        var cancelled = new TaskOutcome(TaskState.Cancelled, null, "cancelled by ann", Now);

        var notStopping = await Store.CancelPendingAsync(id, cancelled, None);
        await Store.RequestStopAsync(id, "cancelled by ann", None);
        var stoppingLoad = await LoadAsync();
        var released = await Store.ReleaseTasksAsync(_tenant, 5, Now, None);
        var ended = await Store.CancelPendingAsync(id, cancelled, None);
        var twice = await Store.CancelPendingAsync(id, cancelled, None);

        Assert.Equal((0, 5), notStopping);
        Assert.Equal(new TenantLoad(_tenant, 0, 2), stoppingLoad);
        Assert.Empty(released);
        Assert.Equal((3, 2), ended);
        Assert.Equal((0, 2), twice);
        var tasks = await Store.GetTasksAsync(id, None);
        Assert.Equal([TaskState.Running, TaskState.Queued, TaskState.Cancelled, TaskState.Cancelled, TaskState.Cancelled], tasks.Select(t => t.State));
        Assert.Equal(("cancelled by ann", (DateTimeOffset?)Now), (tasks[4].Error, tasks[4].FinishedAt));
        Assert.Equal(2, (await Store.GetRunAsync(id, None))!.Remaining);
    }

    [Fact]
    public async Task A_cancel_of_pending_tasks_of_a_run_that_does_not_exist_says_so()
    {
        await Assert.ThrowsAsync<UnknownRunException>(() => Store.CancelPendingAsync(_tag, new TaskOutcome(TaskState.Cancelled, null, "x", Now), None));
    }

    [Fact]
    public async Task Kept_uses_read_back_and_a_later_write_replaces_a_tenants_use()
    {
        await Store.WriteTenantUsageAsync(new Dictionary<TenantId, TenantUse> { [_tenant] = new(12.5, Now) }, None);
        await Store.WriteTenantUsageAsync(new Dictionary<TenantId, TenantUse> { [_tenant] = new(40.25, Now.AddSeconds(1)) }, None);

        Assert.Equal(new TenantUse(40.25, Now.AddSeconds(1)), (await Store.ReadTenantUsageAsync(None))[_tenant]);
    }

    private async Task<TenantLoad?> LoadAsync() => (await Store.TenantLoadsAsync(None)).SingleOrDefault(l => l.Tenant == _tenant);

    private List<TaskKey> Mine(IReadOnlyList<TaskKey> keys) => [.. keys.Where(k => k.RunId.StartsWith(_tag, StringComparison.Ordinal))];

    /// <summary>A run of the test's tenant; ids of one test sort in the order of <paramref name="suffix"/>, as time-ordered run ids do.</summary>
    private async Task<string> CreateAsync(string suffix, int tasks)
    {
        var id = _tag + "-" + suffix;
        await Store.CreateRunAsync(
            new RunRecord(id, "wf", "version: 1", "{}", "/tmp/out/" + id + "/", RunState.Running, 0, 0, Now, null, null, null) { Tenant = _tenant },
            [.. Enumerable.Range(0, tasks).Select(i => NewTask(id, i))],
            None);
        return id;
    }

    private static TaskRecord NewTask(string id, int i) =>
        new(id, i, $"id{i:D4}", TaskState.Queued, [new InputFile($"in/f{i}", 1, "h")], new Dictionary<string, string>(), 0, null, null, null, null, null);
}

/// <summary>The dispatcher's verbs against the embedded mode's store, a new one per test.</summary>
[Unit]
public sealed class InMemoryRunStoreDispatchTests : RunStoreDispatchContract
{
    protected override IRunStore Store { get; } = new InMemoryRunStore();
}

/// <summary>The dispatcher's verbs against the real PostgreSQL, in a schema of the class's own.</summary>
[Integration]
public sealed class PostgresRunStoreDispatchTests(PostgresRunStoreContractTests.Schema schema) : RunStoreDispatchContract, IClassFixture<PostgresRunStoreContractTests.Schema>
{
    protected override IRunStore Store => schema.Store;
}
