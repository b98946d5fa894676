using System.Diagnostics;
using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Containers;
using Pipelines.Containers.Cgroups;
using Pipelines.Model;
using Pipelines.Tests.Harvest;
using Pipelines.Tests.Support;
using ContainerSpec = Pipelines.Containers.ContainerSpec;
using Mount = Pipelines.Containers.Mount;
using Resources = Pipelines.Model.Resources;

namespace Pipelines.Tests.Containers;

/// <summary>
/// The runtime's suspend and resume on real containers: through each container's own freezer
/// files (on this hybrid machine, cgroup.freeze in its v2 tree), never `docker pause`, and for a
/// container whose start was under way, or began, while the runtime was suspended. Containers run
/// under a parent of these tests' own, at normal weight, so they run at once when thawed.
/// </summary>
[Integration]
public sealed class ContainerFreezerTests : IDisposable
{
    private const string Busybox = "pipelines-samples/pair-check:1";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly DockerEngine _engine = new(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint, CgroupParent = "pipelines-cg2-freezer", IdleClass = false });
    private readonly DockerClient _docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
    private readonly TempFolder _temp = new();
    private readonly string _label = Guid.NewGuid().ToString("N");

    [Fact]
    public async Task A_container_that_starts_while_its_runtime_is_suspended_is_frozen_as_soon_as_it_has_started()
    {
        // The burst's onset: the runtime is suspended before this container has started (its
        // start under way, as a slow start under the idle class on a busy machine is).
        Assert.Equal(0, await _engine.Suspender.SuspendAllAsync(CancellationToken.None));
        using var stop = new CancellationTokenSource();
        var run = RunAsync(stop.Token);
        var id = await RunningContainerAsync();
        await WaitAsync(() => Freezer.Holds(Freezer.StateOf(_engine.Idle, id)), () => $"the container to be frozen ({Freezer.StateOf(_engine.Idle, id)})");
        Assert.Equal(_engine.Idle.FindContainer(id), _engine.Freezer.CgroupOf(id));

        // Through its files, not the engine's pause, and it makes no progress while frozen.
        Assert.False((await _docker.Containers.InspectContainerAsync(id)).State!.Paused);
        var frozenAt = Progress();

        // Real time is the scenario here, not a wait for an event: no progress over 1.5 s, which
        // the running container makes every 0.1 s.
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.Equal(frozenAt, Progress());

        Assert.Equal(1, await _engine.Suspender.ResumeAllAsync(CancellationToken.None));
        Assert.Equal(FreezerState.Thawed, Freezer.StateOf(_engine.Idle, id));
        await WaitAsync(() => Progress() > frozenAt + 2, () => "the container to make progress once resumed");

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task A_frozen_container_whose_step_is_stopped_is_killed_at_once_and_removed()
    {
        using var stop = new CancellationTokenSource();
        var run = RunAsync(stop.Token);
        var id = await RunningContainerAsync();
        await WaitAsync(() => Progress() > 0, () => "the container to make progress");
        Assert.Equal(1, await _engine.Suspender.SuspendAllAsync(CancellationToken.None));
        await WaitAsync(() => Freezer.StateOf(_engine.Idle, id) == FreezerState.Frozen, () => $"the container to be frozen ({Freezer.StateOf(_engine.Idle, id)})");

        // A vacate or a cancel: the container is killed while frozen (cgroup.kill where the kernel
        // has it, else thawed first), and removed; nothing of it is left to thaw later.
        var clock = Stopwatch.StartNew();
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Patience));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"the frozen container took {clock.Elapsed.TotalSeconds:0.0} s to stop");
        Assert.Empty(await MineAsync(all: true));
        Assert.Null(_engine.Freezer.CgroupOf(id));
        Assert.Equal(0, await _engine.Suspender.ResumeAllAsync(CancellationToken.None));
    }

    public void Dispose()
    {
        foreach (var folder in _engine.Idle.Hierarchy.Folders(_engine.Idle.Path).Where(Directory.Exists))
        {
            CgroupFile.TryRemove(folder);
        }

        _engine.Dispose();
        _docker.Dispose();
        _temp.Dispose();
    }

    private long Progress() => long.TryParse(CgroupFile.Read(_temp.Combine("out", "n")), out var n) ? n : 0;

    private Task<ContainerResult> RunAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(_temp.Combine("out"));
        File.SetUnixFileMode(_temp.Combine("out"), (UnixFileMode)0b111_111_111);
        var spec = new ContainerSpec(
            Busybox,
            ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /out/n.tmp; busybox mv /out/n.tmp /out/n; busybox usleep 100000; done"],
            new Dictionary<string, string>(),
            [new Mount(_temp.Combine("out"), ContainerLayout.Out, ReadOnly: false)],
            new Resources(1, 64L * 1024 * 1024, TimeSpan.FromMinutes(5), 50),
            new Dictionary<string, string> { ["org.pipelines.test"] = _label });
        return Task.Run(() => _engine.Runtime.RunAsync(spec, ct), CancellationToken.None);
    }

    private async Task<IList<ContainerListResponse>> MineAsync(bool all) =>
        await _docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = all,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"org.pipelines.test={_label}"] = true } },
        });

    private async Task<string> RunningContainerAsync()
    {
        string? id = null;
        var clock = Stopwatch.StartNew();
        while ((id = (await MineAsync(all: false)).FirstOrDefault(c => c.State == "running")?.ID) is null)
        {
            Assert.True(clock.Elapsed < Patience, "waited for the container to run");
            await Task.Delay(100);
        }

        return id;
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
