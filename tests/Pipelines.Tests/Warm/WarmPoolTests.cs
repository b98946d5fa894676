using Microsoft.Extensions.Time.Testing;
using Pipelines.Containers.Warm;

namespace Pipelines.Tests.Warm;

/// <summary>The pool's rules on the real Docker engine: scale up to Max, queue up to MaxQueue, idle out to MinWarm, one owner per container.</summary>
[Integration]
public sealed class WarmPoolTests : IAsyncLifetime
{
    private static readonly Dictionary<string, string> NoEnv = [];
    private readonly WarmTestContext _context = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _context.DisposeAsync();

    [Fact]
    public async Task Load_scales_up_to_max_then_waits_and_idle_containers_scale_back_to_zero()
    {
        var clock = new FakeTimeProvider();
        var pool = _context.Pool(time: clock);
        var spec = await _context.ForkSpecAsync() with { Max = 3, MinWarm = 0, IdleTimeout = TimeSpan.FromMinutes(2) };

        // Three requests at once: three containers; a fourth waits for one of them.
        var leases = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => pool.AcquireAsync(spec, CancellationToken.None).AsTask()));
        Assert.Equal(3, leases.Select(l => l.ContainerId).Distinct().Count());
        var fourth = pool.AcquireAsync(spec, CancellationToken.None).AsTask();
        await pool.WaitForAsync(s => s.Single().Waiting == 1, Timeout(30));
        var stats = pool.Stats().Single();
        Assert.Equal((3, 3, 0, 3L), (stats.Warm, stats.Busy, stats.Starting, stats.Started));
        Assert.False(fourth.IsCompleted);

        var busy = await Task.WhenAll(leases.Select(l => l.RunAsync(["sh", "-c", "echo $$"], NoEnv, TimeSpan.FromMinutes(1), CancellationToken.None)));
        Assert.All(busy, r => Assert.True(r.Succeeded, r.Log));
        await leases[0].DisposeAsync();
        await using (var served = await fourth)
        {
            Assert.Equal(leases[0].ContainerId, served.ContainerId);
            Assert.Equal(3, pool.Stats().Single().Started);
        }

        foreach (var lease in leases.Skip(1))
        {
            await lease.DisposeAsync();
        }

        await pool.WaitForAsync(s => s.Single().Busy == 0, Timeout(30));
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(3, pool.Stats().Single().Warm);
        clock.Advance(TimeSpan.FromMinutes(1.1));
        await pool.WaitForAsync(s => s.Single().Warm == 0 && pool.Removed == 3, Timeout(60));
        foreach (var lease in leases)
        {
            Assert.False(await _context.ExistsAsync(lease.ContainerId));
        }

        // From zero, the next request gets a new container (a cold start).
        await using var cold = await pool.AcquireAsync(spec, CancellationToken.None);
        Assert.Equal(4, pool.Stats().Single().Started);
    }

    [Fact]
    public async Task Many_concurrent_requests_are_all_served_by_at_most_max_containers()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync() with { Max = 2 };
        var used = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        await Task.WhenAll(Enumerable.Range(0, 16).Select(async i =>
        {
            await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
            used.AddOrUpdate(lease.ContainerId, 1, (_, n) => n + 1);
            var result = await lease.RunAsync(["echo", $"request {i}"], NoEnv, TimeSpan.FromMinutes(1), CancellationToken.None);
            Assert.Equal($"request {i}\n", result.Log);
        }));
        Assert.InRange(used.Count, 1, 2);
        Assert.Equal(16, used.Values.Sum());
        Assert.InRange(pool.Stats().Single().Started, 1, 2);
    }

    [Fact]
    public async Task Min_warm_containers_stay_when_idle()
    {
        var clock = new FakeTimeProvider();
        var pool = _context.Pool(time: clock);
        var spec = await _context.ForkSpecAsync() with { Max = 2, MinWarm = 1, IdleTimeout = TimeSpan.FromSeconds(30) };
        var a = await pool.AcquireAsync(spec, CancellationToken.None);
        var b = await pool.AcquireAsync(spec, CancellationToken.None);
        await a.DisposeAsync();
        await b.DisposeAsync();

        // Each of the first two waited for its container to start; the third is served by one already up.
        Assert.True(a.ColdStart && b.ColdStart);
        var c = await pool.AcquireAsync(spec, CancellationToken.None);
        Assert.False(c.ColdStart);
        await c.DisposeAsync();
        clock.Advance(TimeSpan.FromSeconds(31));
        await pool.WaitForAsync(s => s.Single().Warm == 1 && pool.Removed == 1, Timeout(60));
        clock.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(1, pool.Stats().Single().Warm);
    }

    [Fact]
    public async Task A_request_beyond_max_queue_is_refused_with_pool_full()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync() with { Max = 1, MaxQueue = 1 };
        await using var held = await pool.AcquireAsync(spec, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var waiting = pool.AcquireAsync(spec, cancel.Token).AsTask();
        await pool.WaitForAsync(s => s.Single().Waiting == 1, Timeout(30));
        var e = await Assert.ThrowsAsync<PoolFullException>(() => pool.AcquireAsync(spec, CancellationToken.None).AsTask());
        Assert.Equal(spec.Owner, e.Owner);
        Assert.Contains("1 requests already wait", e.Message, StringComparison.Ordinal);

        // A waiter that gives up leaves the queue.
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.Equal(0, pool.Stats().Single().Waiting);
    }

    [Fact]
    public async Task With_queue_0_requests_are_served_while_a_container_is_free_or_can_start_and_refused_only_beyond_max()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync() with { Max = 2, MaxQueue = 0 };

        // Nothing runs: two requests at once each wait only for a container's start.
        var first = pool.AcquireAsync(spec, CancellationToken.None).AsTask();
        var second = pool.AcquireAsync(spec, CancellationToken.None).AsTask();
        var held = await Task.WhenAll(first, second);
        Assert.Equal(2, held.Select(l => l.ContainerId).Distinct().Count());

        // Both of max are busy: no waiting line, so the third is refused at once.
        var e = await Assert.ThrowsAsync<PoolFullException>(() => pool.AcquireAsync(spec, CancellationToken.None).AsTask());
        Assert.Contains("0 requests already wait", e.Message, StringComparison.Ordinal);

        // One is free again: it serves the next request.
        await held[0].DisposeAsync();
        await using (var again = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            Assert.Equal(held[0].ContainerId, again.ContainerId);
        }

        await held[1].DisposeAsync();
        Assert.Equal(2, pool.Stats().Single().Started);
    }

    [Fact]
    public async Task Two_owners_never_share_a_container()
    {
        var pool = _context.Pool();
        var one = await _context.ForkSpecAsync();
        var two = await _context.ForkSpecAsync();
        string first;
        await using (var lease = await pool.AcquireAsync(one, CancellationToken.None))
        {
            first = lease.ContainerId;
        }

        // One's container is free, but it is not two's.
        await using (var lease = await pool.AcquireAsync(two, CancellationToken.None))
        {
            Assert.NotEqual(first, lease.ContainerId);
            var labels = (await _context.Docker.Containers.InspectContainerAsync(lease.ContainerId)).Config!.Labels!;
            Assert.Equal(two.Owner, labels[DockerWarmPool.WarmOwnerLabel]);
        }

        Assert.Equal(2, pool.Stats().Count);
        Assert.All(pool.Stats(), s => Assert.Equal(1, s.Started));

        // An owner's image is fixed: a new version is a new owner.
        var other = one with { ImageId = await _context.Runtime.Images.ResolveImageAsync(WarmTestContext.HttpImage, CancellationToken.None) };
        var e = await Assert.ThrowsAsync<PipelinesException>(() => pool.AcquireAsync(other, CancellationToken.None).AsTask());
        Assert.Contains("a new version is a new owner", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Retiring_an_owner_removes_its_containers()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync() with { MinWarm = 1 };
        string id;
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            id = lease.ContainerId;
        }

        await pool.RetireAsync(spec.Owner, CancellationToken.None);
        Assert.Empty(pool.Stats());
        Assert.False(await _context.ExistsAsync(id));
    }

    [Fact]
    public async Task Settings_out_of_range_and_a_missing_helper_are_refused_by_name()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        var e = await Assert.ThrowsAsync<PipelinesException>(() => pool.AcquireAsync(spec with { Max = 0 }, CancellationToken.None).AsTask());
        Assert.Contains("max 0 (at least 1)", e.Message, StringComparison.Ordinal);

        var noHelper = _context.Pool(o => o with { WarmHelper = "/nonexistent/warm-helper" });
        e = await Assert.ThrowsAsync<PipelinesException>(() => noHelper.AcquireAsync(spec, CancellationToken.None).AsTask());
        Assert.Contains("scripts/build-native", e.Message, StringComparison.Ordinal);
    }

    private static CancellationToken Timeout(int seconds) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;
}
