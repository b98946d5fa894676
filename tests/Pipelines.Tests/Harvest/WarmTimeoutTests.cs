using System.Diagnostics;
using System.Net;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Tests.Warm;

namespace Pipelines.Tests.Harvest;

/// <summary>
/// A warm request's timeout counts only the time its container could run (docs/harvesting.md,
/// "Timeouts"): real warm containers, fork and http mode, held frozen by the runtime's suspend
/// (the harvester's) for longer than the request's timeout, then thawed. In this collection
/// alone: a suspend pauses every container of this process. The containers run at normal
/// weight, not in the idle class, so that on a machine others keep busy they run at once when thawed.
/// </summary>
[Collection("harvest")]
[Integration]
public sealed class WarmTimeoutTests : IAsyncLifetime
{
    private const string Parent = "pipelines-tests";
    private static readonly Dictionary<string, string> NoEnv = [];
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly WarmTestContext _context = new();
    private DockerEngine _runtime = null!;
    private DockerWarmPool _pool = null!;

    public Task InitializeAsync()
    {
        Assert.True(File.Exists(WarmTestContext.Helper), $"{WarmTestContext.Helper} is missing: run scripts/build-images (it runs scripts/build-native)");
        var options = _context.Options(o => o with { CgroupParent = Parent, IdleClass = false });
        _runtime = new DockerEngine(options);
        _pool = new DockerWarmPool(_runtime.Containers, options, WarmTestContext.Worker.QuotaWatch());
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        // Never leave a container frozen behind a failed assertion.
        await _runtime.Suspender.ResumeAllAsync(CancellationToken.None);
        await _pool.DisposeAsync();
        _runtime.Dispose();
        await _context.DisposeAsync();
    }

    [Fact]
    public async Task A_fork_request_held_frozen_past_its_timeout_finishes_normally()
    {
        // Three seconds of work against a timeout of six, frozen until more than eight have passed.
        var spec = await _context.ForkSpecAsync();
        await using var lease = await _pool.AcquireAsync(spec, CancellationToken.None);
        var clock = Stopwatch.StartNew();
        var run = Task.Run(() => lease.RunAsync(["sh", "-c", "echo > started; sleep 3; echo done"], NoEnv, TimeSpan.FromSeconds(6), CancellationToken.None));
        await WaitAsync(() => File.Exists(Path.Combine(lease.OutDir, "started")), () => $"the request to start (the request {run.Status})");

        await HoldFrozenAsync(lease.ContainerId, until: () => clock.Elapsed > TimeSpan.FromSeconds(8));

        var result = await run.WaitAsync(Patience);
        Assert.False(result.TimedOut, $"timed out after {result.Duration.TotalSeconds:0.0} s: {result.Log}");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("done\n", result.Log);
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(8), $"{clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(0, Assert.Single(_pool.Stats()).Replaced);
    }

    [Fact]
    public async Task A_fork_request_that_runs_past_its_timeout_is_still_stopped_once_its_runnable_time_is_up()
    {
        var spec = await _context.ForkSpecAsync();
        await using var lease = await _pool.AcquireAsync(spec, CancellationToken.None);
        var clock = Stopwatch.StartNew();
        var run = Task.Run(() => lease.RunAsync(["sh", "-c", "echo > started; echo going; sleep 60"], NoEnv, TimeSpan.FromSeconds(4), CancellationToken.None));
        await WaitAsync(() => File.Exists(Path.Combine(lease.OutDir, "started")), () => $"the request to start (the request {run.Status})");

        var frozen = await HoldFrozenAsync(lease.ContainerId, until: () => clock.Elapsed > TimeSpan.FromSeconds(6));

        var result = await run.WaitAsync(Patience);
        Assert.True(result.TimedOut, $"exit {result.ExitCode} after {clock.Elapsed.TotalSeconds:0.0} s: {result.Log}");
        Assert.Equal("timed out and was killed", result.Error);
        Assert.Equal("going\n", result.Log);

        // Stopped only once it had had its four seconds of time it could run, the frozen ones left out.
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(4) + frozen, $"stopped after {clock.Elapsed.TotalSeconds:0.0} s, {frozen.TotalSeconds:0.0} s of them frozen");

        // A timeout is the request's end, not the container's: it serves on.
        Assert.Equal("after\n", (await lease.RunAsync(["echo", "after"], NoEnv, TimeSpan.FromMinutes(1), CancellationToken.None)).Log);
        Assert.Equal(0, Assert.Single(_pool.Stats()).Replaced);
    }

    [Fact]
    public async Task An_http_request_held_frozen_past_its_timeout_is_answered()
    {
        var spec = await _context.HttpSpecAsync("--hostile");
        await using var lease = await _pool.AcquireAsync(spec, CancellationToken.None);
        var clock = Stopwatch.StartNew();
        var send = Task.Run(() => lease.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/slow?ms=3000"), TimeSpan.FromSeconds(6), CancellationToken.None));

        await HoldFrozenAsync(lease.ContainerId, until: () => clock.Elapsed > TimeSpan.FromSeconds(8));

        using var response = await send.WaitAsync(Patience);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(8), $"{clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(0, Assert.Single(_pool.Stats()).Replaced);
    }

    [Fact]
    public async Task An_http_request_that_runs_past_its_timeout_still_kills_the_container_once_its_runnable_time_is_up()
    {
        var spec = await _context.HttpSpecAsync("--hostile");
        string id;
        var clock = Stopwatch.StartNew();
        TimeSpan frozen;
        await using (var lease = await _pool.AcquireAsync(spec, CancellationToken.None))
        {
            id = lease.ContainerId;
            var send = Task.Run(() => lease.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/hang") { Content = new StringContent("x") }, TimeSpan.FromSeconds(3), CancellationToken.None));
            frozen = await HoldFrozenAsync(id, until: () => clock.Elapsed > TimeSpan.FromSeconds(5));

            var e = await Assert.ThrowsAsync<WarmContainerException>(() => send.WaitAsync(Patience));
            Assert.True(e.TimedOut, e.Message);
            Assert.Contains("timed out after 3 s", e.Message, StringComparison.Ordinal);
        }

        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(3) + frozen, $"stopped after {clock.Elapsed.TotalSeconds:0.0} s, {frozen.TotalSeconds:0.0} s of them frozen");
        using var removed = new CancellationTokenSource(Patience);
        await _pool.WaitForAsync(s => s.Single().Replaced == 1 && _pool.Removed == 1, removed.Token);
        Assert.False(await _context.ExistsAsync(id));
    }

    /// <summary>
    /// Suspends this process's containers as the harvester does, waits until the freezer holds
    /// <paramref name="containerId"/> and <paramref name="until"/> holds, then resumes them.
    /// Returns how long they were certainly held: from the end of the suspend to the start of the resume.
    /// </summary>
    private async Task<TimeSpan> HoldFrozenAsync(string containerId, Func<bool> until)
    {
        await _runtime.Suspender.SuspendAllAsync(CancellationToken.None);
        var held = Stopwatch.StartNew();
        await WaitAsync(() => Freezer.Holds(Freezer.StateOf(_runtime.Idle, containerId)), () => $"the freezer to hold the container ({Freezer.StateOf(_runtime.Idle, containerId)})");
        await WaitAsync(until, () => "the request's timeout to pass in wall-clock time while frozen");
        var frozen = held.Elapsed;
        Assert.Equal(1, await _runtime.Suspender.ResumeAllAsync(CancellationToken.None));
        return frozen;
    }

    private static async Task WaitAsync(Func<bool> condition, Func<string> what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, $"waited {Patience.TotalSeconds:0} s for {what()}");
            await Task.Delay(100);
        }
    }
}
