using System.Net;
using Pipelines.Containers.Warm;

namespace Pipelines.Tests.Warm;

/// <summary>Http mode on the real Docker engine, with the C example server on its Unix socket.</summary>
[Integration]
public sealed class HttpModeTests : IAsyncLifetime
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private readonly WarmTestContext _context = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _context.DisposeAsync();

    [Fact]
    public async Task One_container_serves_many_concurrent_requests_with_its_model_loaded_once()
    {
        var pool = _context.Pool();
        var spec = await _context.HttpSpecAsync() with { Max = 1 };
        var answers = await Task.WhenAll(Enumerable.Range(0, 40).Select(async i =>
        {
            await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
            using var response = await lease.SendAsync(Post("/", $"hello world {i}, good morning"), Minute, CancellationToken.None);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return (Body: await response.Content.ReadAsStringAsync(), Loads: response.Headers.GetValues("X-Model-Loads").Single(), Pid: response.Headers.GetValues("X-Server-Pid").Single(), lease.ContainerId);
        }));

        for (var i = 0; i < answers.Length; i++)
        {
            Assert.Equal($"bonjour monde {i}, bon matin", answers[i].Body);
        }

        Assert.All(answers, a => Assert.Equal("1", a.Loads));
        Assert.Single(answers.Select(a => a.Pid).Distinct());
        Assert.Single(answers.Select(a => a.ContainerId).Distinct());
        var stats = pool.Stats().Single();
        Assert.Equal(1, stats.Started);
        Assert.Equal(0, stats.Replaced);
    }

    [Fact]
    public async Task Requests_beyond_one_containers_concurrency_start_another_up_to_max()
    {
        var pool = _context.Pool();
        var spec = await _context.HttpSpecAsync() with { Concurrency = 2, Max = 2 };
        var leases = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => pool.AcquireAsync(spec, CancellationToken.None).AsTask()));
        Assert.Equal(2, leases.Select(l => l.ContainerId).Distinct().Count());
        Assert.All(leases.GroupBy(l => l.ContainerId), g => Assert.Equal(2, g.Count()));
        var fifth = pool.AcquireAsync(spec, CancellationToken.None).AsTask();
        await pool.WaitForAsync(s => s.Single().Waiting == 1, Timeout(30));
        Assert.Equal(2, pool.Stats().Single().Started);

        var answers = await Task.WhenAll(leases.Select(async l =>
        {
            using var response = await l.SendAsync(Post("/", "many small file"), Minute, CancellationToken.None);
            return await response.Content.ReadAsStringAsync();
        }));
        Assert.All(answers, a => Assert.Equal("beaucoup petit fichier", a));
        await leases[3].DisposeAsync();
        await using (var served = await fifth)
        {
            Assert.Equal(leases[3].ContainerId, served.ContainerId);
        }

        foreach (var lease in leases.Take(3))
        {
            await lease.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_server_that_crashes_fails_its_request_with_its_stderr_and_is_replaced()
    {
        var pool = _context.Pool();
        var spec = await _context.HttpSpecAsync("--hostile");
        string crashed;
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            crashed = lease.ContainerId;
            var e = await Assert.ThrowsAsync<WarmContainerException>(() => lease.SendAsync(Post("/crash", "x"), Minute, CancellationToken.None));
            Assert.Contains("crashing as asked", e.Message, StringComparison.Ordinal);
            Assert.Contains("is replaced", e.Message, StringComparison.Ordinal);
        }

        await pool.WaitForAsync(s => s.Single().Replaced == 1 && pool.Removed == 1, Timeout(30));
        Assert.False(await _context.ExistsAsync(crashed));
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            Assert.NotEqual(crashed, lease.ContainerId);
            using var response = await lease.SendAsync(Post("/", "the dog"), Minute, CancellationToken.None);
            Assert.Equal("le chien", await response.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task A_server_that_answers_garbage_is_replaced()
    {
        var pool = _context.Pool();
        var spec = await _context.HttpSpecAsync("--hostile");
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            var e = await Assert.ThrowsAsync<WarmContainerException>(() => lease.SendAsync(Post("/garbage", "x"), Minute, CancellationToken.None));
            Assert.Contains("broke the HTTP exchange", e.Message, StringComparison.Ordinal);
        }

        await pool.WaitForAsync(s => s.Single().Replaced == 1 && pool.Removed == 1, Timeout(30));
    }

    [Fact]
    public async Task A_request_past_its_timeout_kills_the_container()
    {
        var pool = _context.Pool();
        var spec = await _context.HttpSpecAsync("--hostile");
        string hung;
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            hung = lease.ContainerId;
            var e = await Assert.ThrowsAsync<WarmContainerException>(() => lease.SendAsync(Post("/hang", "x"), TimeSpan.FromSeconds(1), CancellationToken.None));
            Assert.True(e.TimedOut);
            Assert.Contains("timed out after 1 s", e.Message, StringComparison.Ordinal);
        }

        await pool.WaitForAsync(s => s.Single().Replaced == 1 && pool.Removed == 1, Timeout(30));
        Assert.False(await _context.ExistsAsync(hung));
    }

    [Fact]
    public async Task A_server_that_never_listens_or_dies_at_start_is_a_clear_start_failure()
    {
        var pool = _context.Pool(o => o with { WarmStartTimeout = TimeSpan.FromSeconds(3) });
        var never = await _context.HttpSpecAsync("--never-listen");
        var e = await Assert.ThrowsAsync<PipelinesException>(() => pool.AcquireAsync(never, CancellationToken.None).AsTask());
        Assert.Contains("nothing answered on /run/pipelines/http.sock within 3 s", e.Message, StringComparison.Ordinal);
        Assert.Contains("never listening, as asked", e.Message, StringComparison.Ordinal);

        var dies = await _context.HttpSpecAsync("--die");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        e = await Assert.ThrowsAsync<PipelinesException>(() => pool.AcquireAsync(dies, CancellationToken.None).AsTask());
        Assert.Contains("ended before it listened", e.Message, StringComparison.Ordinal);
        Assert.Contains("dying at start as asked", e.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), clock.Elapsed.ToString());
        Assert.Equal(0, pool.Stats().Sum(s => s.Warm));
    }

    [Fact]
    public async Task A_server_that_prints_its_secret_and_never_listens_fails_to_start_with_the_secret_masked()
    {
        // The container's own output (Docker's log of it) ends the start failure's reason, which
        // reaches the caller (a 502) and the invocation's record: a secret it printed is masked
        // there as in a request's output (LogMask), never quoted.
        var pool = _context.Pool(o => o with { WarmStartTimeout = TimeSpan.FromSeconds(3) });
        var secret = "warm-secret-" + Guid.NewGuid().ToString("N");
        var spec = await _context.HttpSpecAsync() with
        {
            ImageId = await _context.Runtime.Images.ResolveImageAsync("pipelines-tests/hostile:1", CancellationToken.None),
            Command = ["sh", "-c", "echo the token is $API_TOKEN; sleep 60"],
            Secrets = new Dictionary<string, string> { ["API_TOKEN"] = secret },
        };

        var e = await Assert.ThrowsAsync<PipelinesException>(() => pool.AcquireAsync(spec, CancellationToken.None).AsTask());
        Assert.Contains("its output ends: the token is ***", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_http_container_is_locked_down_and_told_its_socket()
    {
        var pool = _context.Pool();
        var spec = await _context.HttpSpecAsync();
        await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
        var inspect = await _context.Docker.Containers.InspectContainerAsync(lease.ContainerId);
        var config = inspect.Config!;
        var host = inspect.HostConfig!;
        Assert.Equal("65534:65534", config.User);
        Assert.Equal("none", host.NetworkMode);
        Assert.True(host.ReadonlyRootfs);
        Assert.Equal(["ALL"], host.CapDrop);
        Assert.Contains("no-new-privileges", host.SecurityOpt);
        Assert.Contains("PIPELINES_HTTP_SOCKET=" + WarmLayout.HttpSocket, config.Env);
        Assert.DoesNotContain(inspect.Mounts, m => m.Destination == WarmLayout.Helper);
    }

    private static HttpRequestMessage Post(string path, string body) => new(HttpMethod.Post, path) { Content = new StringContent(body) };

    private static CancellationToken Timeout(int seconds) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;
}
