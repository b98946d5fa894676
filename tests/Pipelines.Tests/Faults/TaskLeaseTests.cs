using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using Pipelines.Hosting;
using Pipelines.Planning;
using Pipelines.RunStore;
using Pipelines.Tests.Support;
using Pipelines.Worker;

namespace Pipelines.Tests.Faults;

/// <summary>
/// The task lease, checked the same way on both run stores: a task is claimed when queued, or
/// when running with an expired lease, never while another attempt's lease is live.
/// </summary>
[Integration]
public sealed class TaskLeaseTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(45);
    private readonly string _schema = TestEnvironment.NewName("lease_");
    private NpgsqlDataSource _db = null!;

    public async Task InitializeAsync() => _db = await TestEnvironment.PostgresAsync();

    public async Task DisposeAsync()
    {
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _db.DisposeAsync();
    }

    [Fact]
    public Task The_in_memory_store_claims_a_running_task_only_after_its_lease_expires() =>
        AssertLeaseRuleAsync(new InMemoryRunStore());

    [Fact]
    public async Task The_postgres_store_claims_a_running_task_only_after_its_lease_expires()
    {
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        var store = new PostgresRunStore(_db, _schema);
        await AssertLeaseRuleAsync(store);
    }

    [Fact]
    public async Task The_lease_column_is_added_to_a_database_made_before_leases()
    {
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        var store = new PostgresRunStore(_db, _schema);
        await using (var drop = _db.CreateCommand($"ALTER TABLE {_schema}.tasks DROP COLUMN lease_until"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        await CreateRunAsync(store, "old");
        await using (var running = _db.CreateCommand($"UPDATE {_schema}.tasks SET state = 'running', worker = 'old-worker'"))
        {
            await running.ExecuteNonQueryAsync();
        }

        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);

        // A task left running by a worker of before leases has no lease: it may be claimed.
        Assert.Equal(0, await store.ClaimTaskAsync("old", 0, "w", Now, Now + Lease, CancellationToken.None));
    }

    [Fact]
    public async Task A_running_attempt_renews_its_lease_and_releases_it_when_it_ends()
    {
        var store = new InMemoryRunStore();
        await CreateRunAsync(store, "renew");
        var time = new FakeTimeProvider(Now);
        var options = new WorkerOptions { Name = "w1", LeaseDuration = Lease, LeaseRefreshInterval = TimeSpan.FromSeconds(15) };
        var lease = await TaskLease.ClaimAsync(store, "renew", 0, options, time, NullLogger.Instance, CancellationToken.None);
        Assert.NotNull(lease);

        // Two minutes of a running attempt: the lease never comes within 20 s of expiring.
        for (var s = 0; s < 120; s++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await WaitForAsync(() => store.GetTaskAsync("renew", 0, CancellationToken.None), t => t!.LeaseUntil > time.GetUtcNow() + TimeSpan.FromSeconds(20));
            Assert.Null(await store.ClaimTaskAsync("renew", 0, "w2", time.GetUtcNow(), time.GetUtcNow() + Lease, CancellationToken.None));
        }

        // The attempt ends without a commit (an outage, a shutdown): its redelivery need not wait.
        await lease.DisposeAsync();
        Assert.Equal(1, await store.ClaimTaskAsync("renew", 0, "w2", time.GetUtcNow(), time.GetUtcNow() + Lease, CancellationToken.None));
    }

    [Fact]
    public async Task A_second_delivery_waits_while_the_lease_is_renewed_and_claims_once_it_expires()
    {
        var store = new InMemoryRunStore();
        await CreateRunAsync(store, "wait");
        var time = new FakeTimeProvider(Now);
        Assert.Equal(0, await store.ClaimTaskAsync("wait", 0, "w1", Now, Now + Lease, CancellationToken.None));
        var options = new WorkerOptions { Name = "w2", LeaseDuration = Lease, LeaseRefreshInterval = TimeSpan.FromSeconds(15) };

        var second = TaskLease.ClaimAsync(store, "wait", 0, options, time, NullLogger.Instance, CancellationToken.None);

        // The first attempt is alive for a minute, renewing every 15 s: the second delivery waits.
        for (var s = 1; s <= 60; s++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            if (s % 15 == 0)
            {
                Assert.True(await store.RenewLeaseAsync("wait", 0, "w1", Now, time.GetUtcNow() + Lease, CancellationToken.None));
            }

            Assert.False(second.IsCompleted);
        }

        // Then its worker dies: no renewal, no release. The second delivery claims when the lease expires.
        var until = (await store.GetTaskAsync("wait", 0, CancellationToken.None))!.LeaseUntil!.Value;
        await using var taken = await AdvanceUntilAsync(time, second, TimeSpan.FromSeconds(1));
        Assert.NotNull(taken);
        var task = (await store.GetTaskAsync("wait", 0, CancellationToken.None))!;
        Assert.Equal("w2", task.Worker);
        Assert.InRange(task.StartedAt!.Value, until, until + TimeSpan.FromSeconds(2));
    }

    private static async Task AssertLeaseRuleAsync(IRunStore store)
    {
        var ct = CancellationToken.None;
        await CreateRunAsync(store, "r");

        Assert.Equal(0, await store.ClaimTaskAsync("r", 0, "w1", Now, Now + Lease, ct));
        Assert.Equal(Now + Lease, (await store.GetTaskAsync("r", 0, ct))!.LeaseUntil);

        // A second delivery while the lease is live: not claimed, the first attempt keeps it.
        Assert.Null(await store.ClaimTaskAsync("r", 0, "w2", Now.AddSeconds(10), Now.AddSeconds(55), ct));
        Assert.Equal("w1", (await store.GetTaskAsync("r", 0, ct))!.Worker);

        // Only the attempt that holds the lease renews it.
        Assert.True(await store.RenewLeaseAsync("r", 0, "w1", Now, Now.AddSeconds(70), ct));
        Assert.False(await store.RenewLeaseAsync("r", 0, "w2", Now, Now.AddSeconds(99), ct));
        Assert.False(await store.RenewLeaseAsync("r", 0, "w1", Now.AddSeconds(1), Now.AddSeconds(99), ct));
        Assert.Null(await store.ClaimTaskAsync("r", 0, "w2", Now.AddSeconds(60), Now.AddSeconds(105), ct));

        // Expired (the worker died): the next delivery claims it (the second: the first is recorded lost), and the old attempt can no longer renew.
        Assert.Equal(1, await store.ClaimTaskAsync("r", 0, "w2", Now.AddSeconds(70), Now.AddSeconds(115), ct));
        Assert.False(await store.RenewLeaseAsync("r", 0, "w1", Now, Now.AddSeconds(130), ct));

        // Released (a renewal to the past): claimed at once.
        Assert.True(await store.RenewLeaseAsync("r", 0, "w2", Now.AddSeconds(70), Now.AddSeconds(71), ct));
        Assert.Equal(2, await store.ClaimTaskAsync("r", 0, "w3", Now.AddSeconds(71), Now.AddSeconds(116), ct));

        // Ended: never claimed or renewed again.
        await store.CommitTaskAsync("r", 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now.AddSeconds(80)), [], ct);
        Assert.Null(await store.ClaimTaskAsync("r", 0, "w4", Now.AddHours(1), Now.AddHours(2), ct));
        Assert.False(await store.RenewLeaseAsync("r", 0, "w3", Now.AddSeconds(71), Now.AddHours(2), ct));
    }

    private static async Task<T> AdvanceUntilAsync<T>(FakeTimeProvider time, Task<T> waiting, TimeSpan step)
    {
        for (var i = 0; i < 600 && !waiting.IsCompleted; i++)
        {
            time.Advance(step);
            await Task.WhenAny(waiting, Task.Delay(50));
        }

        return await waiting;
    }

    private static async Task WaitForAsync<T>(Func<Task<T>> probe, Func<T, bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!done(await probe()))
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition was not reached within 10 s");
            await Task.Delay(10);
        }
    }

    private static Task CreateRunAsync(IRunStore store, string runId)
    {
        var run = new RunRecord(runId, "wf", "version: 1", "{}", "/tmp/out/" + runId + "/", RunState.Running, 1, 1, Now, null, null, null);
        var task = new TaskRecord(runId, 0, "id0", TaskState.Queued, [new InputFile("in/f0.fastq", 10, "abc")], new Dictionary<string, string>(), 0, null, null, null, null, null);
        return store.CreateRunAsync(run, [task], CancellationToken.None);
    }
}
