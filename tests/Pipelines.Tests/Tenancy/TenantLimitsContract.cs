using Npgsql;
using Pipelines.Hosting;
using Pipelines.Quotas;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Tenancy;

/// <summary>
/// The behaviour of <see cref="ITenantLimits"/> that both homes share, run against each: slots
/// never exceed the limit however many take at once, are per tenant and kind, come back when
/// released, and a holder keeps its one slot; the token bucket gives its size at once, then refills
/// at its rate and says how long until the next token.
/// </summary>
public abstract class TenantLimitsContract : IAsyncLifetime
{
    protected static readonly TenantId LabA = TenantId.Parse("lab-a", "test");
    protected static readonly TenantId LabB = TenantId.Parse("lab-b", "test");
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;

    private protected ITenantLimits Limits { get; private set; } = null!;

    private protected abstract Task<ITenantLimits> CreateAsync();

    public virtual Task DisposeAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => Limits = await CreateAsync();

    [Fact]
    public async Task Twenty_acquirers_at_once_never_take_more_than_the_limit()
    {
        var taken = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Task.Run(() => Limits.TryAcquireAsync(LabA, LimitKind.Invocations, $"h{i}", 3, None))));

        Assert.Equal(3, taken.Count(t => t));
        Assert.Equal(3, await Limits.HeldAsync(LabA, LimitKind.Invocations, None));
    }

    [Fact]
    public async Task A_released_slot_is_taken_by_the_next_acquirer()
    {
        Assert.True(await Limits.TryAcquireAsync(LabA, LimitKind.Invocations, "first", 1, None));
        Assert.False(await Limits.TryAcquireAsync(LabA, LimitKind.Invocations, "second", 1, None));

        await Limits.ReleaseAsync(LabA, LimitKind.Invocations, "first", None);

        Assert.True(await Limits.TryAcquireAsync(LabA, LimitKind.Invocations, "second", 1, None));
        await Limits.ReleaseAsync(LabA, LimitKind.Invocations, "first", None);
        Assert.Equal(1, await Limits.HeldAsync(LabA, LimitKind.Invocations, None));
    }

    [Fact]
    public async Task A_holder_asking_again_keeps_its_one_slot()
    {
        Assert.True(await Limits.TryAcquireAsync(LabA, LimitKind.Invocations, "job-1", 1, None));
        Assert.True(await Limits.TryAcquireAsync(LabA, LimitKind.Invocations, "job-1", 1, None));

        Assert.Equal(1, await Limits.HeldAsync(LabA, LimitKind.Invocations, None));
    }

    [Fact]
    public async Task Slots_are_counted_per_tenant_and_per_kind()
    {
        Assert.True(await Limits.TryAcquireAsync(LabA, LimitKind.Invocations, "x", 1, None));

        Assert.True(await Limits.TryAcquireAsync(LabB, LimitKind.Invocations, "x", 1, None));
        Assert.True(await Limits.TryAcquireAsync(LabA, LimitKind.WarmContainers, "x", 1, None));
        Assert.False(await Limits.TryAcquireAsync(LabA, LimitKind.Invocations, "y", 1, None));
    }

    [Fact]
    public async Task The_bucket_gives_its_size_at_once_then_one_token_per_interval_of_the_rate()
    {
        Assert.Null(await Limits.TakeAsync(LabA, 2, Now, None));
        Assert.Null(await Limits.TakeAsync(LabA, 2, Now, None));

        Assert.Equal(TimeSpan.FromSeconds(30), await Limits.TakeAsync(LabA, 2, Now, None));
        Assert.Equal(TimeSpan.FromSeconds(20), await Limits.TakeAsync(LabA, 2, Now.AddSeconds(10), None));
        Assert.Null(await Limits.TakeAsync(LabA, 2, Now.AddSeconds(30), None));
        Assert.Equal(TimeSpan.FromSeconds(30), await Limits.TakeAsync(LabA, 2, Now.AddSeconds(30), None));

        // Another tenant's bucket is its own.
        Assert.Null(await Limits.TakeAsync(LabB, 2, Now, None));
    }

    [Fact]
    public async Task A_bucket_left_alone_fills_to_its_size_and_no_further()
    {
        for (var i = 0; i < 3; i++)
        {
            Assert.Null(await Limits.TakeAsync(LabA, 3, Now, None));
        }

        var later = Now.AddHours(1);
        var taken = 0;
        while (await Limits.TakeAsync(LabA, 3, later, None) is null)
        {
            taken++;
        }

        Assert.Equal(3, taken);
    }

    [Fact]
    public async Task A_clock_behind_the_last_takers_gives_no_tokens()
    {
        Assert.Null(await Limits.TakeAsync(LabA, 1, Now, None));

        Assert.NotNull(await Limits.TakeAsync(LabA, 1, Now.AddMinutes(-5), None));
        Assert.NotNull(await Limits.TakeAsync(LabA, 1, Now.AddSeconds(30), None));
        Assert.Null(await Limits.TakeAsync(LabA, 1, Now.AddSeconds(60), None));
    }
}

/// <summary>The contract against the embedded mode's counters.</summary>
[Unit]
public sealed class InMemoryTenantLimitsContractTests : TenantLimitsContract
{
    private protected override Task<ITenantLimits> CreateAsync() => Task.FromResult<ITenantLimits>(new InMemoryTenantLimits());
}

/// <summary>
/// The contract against the real PostgreSQL, each acquirer on a connection of its own; and what
/// only a cluster has: processes that die holding slots.
/// </summary>
[Integration]
public sealed class PostgresTenantLimitsContractTests : TenantLimitsContract
{
    private readonly string _schema = TestEnvironment.NewName("lim_");
    private NpgsqlDataSource _db = null!;

    private protected override async Task<ITenantLimits> CreateAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        return new PostgresTenantLimits(_db, _schema);
    }

    public override async Task DisposeAsync()
    {
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _db.DisposeAsync();
    }

    [Fact]
    public async Task The_slot_of_a_process_unseen_for_a_minute_is_given_to_the_next_acquirer()
    {
        var dead = new PostgresTenantLimits(_db, _schema, process: "dead-host/1/x");
        var alive = (PostgresTenantLimits)Limits;
        await dead.BeatAsync(CancellationToken.None);
        await alive.BeatAsync(CancellationToken.None);
        Assert.True(await dead.TryAcquireAsync(LabA, LimitKind.Invocations, "held-by-dead", 1, CancellationToken.None));
        Assert.False(await alive.TryAcquireAsync(LabA, LimitKind.Invocations, "mine", 1, CancellationToken.None));

        await SeenAsync(dead.Process, TimeSpan.FromSeconds(61));

        Assert.True(await alive.TryAcquireAsync(LabA, LimitKind.Invocations, "mine", 1, CancellationToken.None));
        Assert.Equal(1, await alive.HeldAsync(LabA, LimitKind.Invocations, CancellationToken.None));
    }

    [Fact]
    public async Task A_process_seen_within_the_minute_keeps_its_slots()
    {
        var other = new PostgresTenantLimits(_db, _schema, process: "other-host/1/x");
        await other.BeatAsync(CancellationToken.None);
        Assert.True(await other.TryAcquireAsync(LabA, LimitKind.WarmContainers, "c1", 1, CancellationToken.None));

        await SeenAsync(other.Process, TimeSpan.FromSeconds(50));

        Assert.False(await Limits.TryAcquireAsync(LabA, LimitKind.WarmContainers, "c2", 1, CancellationToken.None));
    }

    [Fact]
    public async Task A_redelivered_holder_moves_to_the_process_that_asks_again()
    {
        var dead = new PostgresTenantLimits(_db, _schema, process: "dead-host/2/x");
        Assert.True(await dead.TryAcquireAsync(LabA, LimitKind.Invocations, "inv-1", 1, CancellationToken.None));
        var alive = (PostgresTenantLimits)Limits;
        await alive.BeatAsync(CancellationToken.None);

        Assert.True(await alive.TryAcquireAsync(LabA, LimitKind.Invocations, "inv-1", 1, CancellationToken.None));
        await SeenAsync(dead.Process, TimeSpan.FromMinutes(5));

        // Still held (now by the live process): the sweep of the dead one does not take it.
        Assert.False(await alive.TryAcquireAsync(LabA, LimitKind.Invocations, "inv-2", 1, CancellationToken.None));
    }

    /// <summary>Moves a process's last beat into the past, as if it had stopped beating that long ago.</summary>
    private async Task SeenAsync(string process, TimeSpan ago)
    {
        await using var cmd = _db.CreateCommand($"UPDATE {_schema}.tenant_processes SET seen_at = now() - @ago WHERE process = @p");
        cmd.Parameters.AddWithValue("ago", ago);
        cmd.Parameters.AddWithValue("p", process);
        Assert.Equal(1, await cmd.ExecuteNonQueryAsync());
    }
}
