using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Containers;
using Pipelines.Containers.Cgroups;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Containers;

/// <summary>
/// The v2 files this machine has for real, on real containers: its unified tree
/// (/sys/fs/cgroup/unified beside the v1 controllers; /sys/fs/cgroup on a machine that boots v2),
/// where runc mirrors each container's cgroup with its processes. Freeze and thaw through
/// cgroup.freeze (cgroup.events says when it is done), kill through cgroup.kill, and CPU time
/// through cpu.stat, read by the same <see cref="CgroupV2"/> a v2 machine uses. Containers run under
/// a parent of these tests' own, at normal weight.
/// </summary>
[Integration]
public sealed class CgroupV2ContainerTests : IDisposable
{
    private const string Busybox = "pipelines-samples/pair-check:1";
    private const string ParentName = "pipelines-cg2-v2";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly DockerClient _docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
    private readonly CgroupV2 _tree = CgroupMounts.Machine switch
    {
        CgroupV2 v2 => v2,
        CgroupHybrid hybrid => hybrid.Tree,
        _ => throw new InvalidOperationException($"this machine has no cgroup v2 tree ({CgroupMounts.Machine.Name})"),
    };

    private readonly CgroupDriver _driver;
    private readonly string _label = Guid.NewGuid().ToString("N");

    public CgroupV2ContainerTests() => _driver = CgroupDriver.Ask(_docker, CgroupMounts.Machine, TimeSpan.FromSeconds(30));

    private string Parent => _driver.ParentName(ParentName, idle: true);

    [Fact]
    public async Task A_container_frozen_through_cgroup_freeze_stops_using_cpu_and_runs_again_when_thawed()
    {
        var id = await StartAsync(_driver.EngineParent(Parent), ["sh", "-c", "while :; do :; done"]);
        var cgroup = _driver.ContainerCgroup(_driver.PathOf(Parent), id);
        Assert.Contains(Pid(id), CgroupFile.Read(Path.Combine(CgroupFile.Under(_tree.Root, cgroup), "cgroup.procs"))!.Split('\n'));
        await WaitAsync(() => _tree.CpuNanos(cgroup) > 0, "cpu.stat to count the container's loop");
        Assert.Equal(FreezerState.Thawed, _tree.FreezerState(cgroup));

        Assert.True(_tree.Freeze(cgroup, frozen: true));
        await WaitAsync(() => _tree.FreezerState(cgroup) == FreezerState.Frozen, () => $"cgroup.events to say frozen 1 ({CgroupFile.Read(Path.Combine(CgroupFile.Under(_tree.Root, cgroup), "cgroup.events"))})");
        var frozenAt = _tree.CpuNanos(cgroup);

        // Real time is the scenario here, not a wait for an event: no CPU counted over a second,
        // which the busy loop fills when it runs.
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(frozenAt, _tree.CpuNanos(cgroup));

        // The engine was not asked: to Docker it runs, not paused.
        Assert.False((await _docker.Containers.InspectContainerAsync(id)).State!.Paused);

        Assert.True(_tree.Freeze(cgroup, frozen: false));
        Assert.Equal(FreezerState.Thawed, _tree.FreezerState(cgroup));
        await WaitAsync(() => _tree.CpuNanos(cgroup) > frozenAt, "the container to use CPU again once thawed");
    }

    [Fact]
    public async Task A_frozen_container_is_killed_at_once_through_cgroup_kill()
    {
        var id = await StartAsync(_driver.EngineParent(Parent), ["sh", "-c", "busybox sleep 600 & while :; do :; done"]);
        var cgroup = _driver.ContainerCgroup(_driver.PathOf(Parent), id);
        Assert.True(_tree.Freeze(cgroup, frozen: true));
        await WaitAsync(() => _tree.FreezerState(cgroup) == FreezerState.Frozen, "the container to be frozen");

        Assert.True(_tree.Kill(cgroup));
        using var bound = new CancellationTokenSource(Patience);
        var exit = await _docker.Containers.WaitContainerAsync(id, bound.Token);
        Assert.Equal(137, exit.StatusCode);
        Assert.False(_tree.Kill("/pipelines-cg2-no-such-cgroup"));
    }

    [Fact]
    public async Task An_attempts_cgroup_in_the_v2_tree_keeps_its_containers_cpu_time_after_the_container_is_gone()
    {
        var (engine, attempt) = _driver.NewAttempt(Parent);
        var id = await StartAsync(engine, ["sh", "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done"]);
        using (var bound = new CancellationTokenSource(Patience))
        {
            Assert.Equal(0, (await _docker.Containers.WaitContainerAsync(id, bound.Token)).StatusCode);
        }

        await _docker.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true });
        await WaitAsync(() => !Directory.Exists(CgroupFile.Under(_tree.Root, _driver.ContainerCgroup(attempt, id))), "the container's own cgroup to go");

        // The container's cgroup is gone; its parent, the attempt's, still counts what it used,
        // in the v2 tree as in the machine's own accounting (cpuacct on a hybrid machine).
        var v2 = _tree.CpuNanos(attempt);
        var machine = CgroupMounts.Machine.CpuNanos(attempt);
        Assert.NotNull(v2);
        Assert.True(v2 > 100_000_000, $"cpu.stat counted {v2} ns");
        Assert.InRange(v2!.Value, machine!.Value * 0.98 - 10_000_000, machine.Value * 1.02 + 10_000_000);
    }

    public void Dispose()
    {
        var mine = _docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"org.pipelines.test={_label}"] = true } },
        }).GetAwaiter().GetResult();
        foreach (var c in mine)
        {
            _docker.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true }).GetAwaiter().GetResult();
        }

        // The parent and its attempts, in every hierarchy (rmdir: the engine has removed the containers' own).
        foreach (var folder in CgroupMounts.Machine.Folders(_driver.PathOf(Parent)).Where(Directory.Exists))
        {
            foreach (var child in Directory.EnumerateDirectories(folder))
            {
                CgroupFile.TryRemove(child);
            }

            CgroupFile.TryRemove(folder);
        }

        _docker.Dispose();
    }

    private async Task<string> StartAsync(string cgroupParent, IList<string> command)
    {
        var id = (await _docker.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Image = Busybox,
            Entrypoint = [command[0]],
            Cmd = [.. command.Skip(1)],
            User = "65534:65534",
            Labels = new Dictionary<string, string> { ["org.pipelines.test"] = _label },
            NetworkDisabled = true,
            HostConfig = new HostConfig { NetworkMode = "none", CgroupParent = cgroupParent, Memory = 64L * 1024 * 1024, CPUShares = 1024 },
        })).ID;
        await _docker.Containers.StartContainerAsync(id, new ContainerStartParameters());
        return id;
    }

    private string Pid(string id) =>
        _docker.Containers.InspectContainerAsync(id).GetAwaiter().GetResult().State!.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static Task WaitAsync(Func<bool> condition, string what) => WaitAsync(condition, () => what);

    private static async Task WaitAsync(Func<bool> condition, Func<string> what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, $"waited {Patience.TotalSeconds:0} s for {what()}");
            await Task.Delay(100);
        }
    }
}
