using System.Diagnostics;
using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Containers;
using Pipelines.Containers.Cgroups;
using Pipelines.Tests.Support;
using ContainerSpec = Pipelines.Containers.ContainerSpec;
using Resources = Pipelines.Model.Resources;

namespace Pipelines.Tests.Containers;

/// <summary>
/// A worker killed while its containers were frozen in the v1 freezer leaves them FROZEN, and a
/// task frozen there does not die of the engine's SIGKILL until it thaws: the sweep of its
/// leftovers must thaw before it removes. A real container, frozen through its v1 freezer.state
/// as such a worker froze it; its owner is this process, which the sweep is told is gone, so the
/// test runs alone (the "harvest" collection), as the sweep acts on all of this process's containers.
/// </summary>
[Collection("harvest")]
[Integration]
public sealed class FrozenLeftoverSweepTests : IAsyncLifetime
{
    private const string Busybox = "pipelines-samples/pair-check:1";
    private readonly DockerEngine _engine = new(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint, CgroupParent = "pipelines-tests-sweep", IdleClass = false });
    private readonly DockerClient _docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
    private string? _id;

    [Fact]
    public async Task A_leftover_frozen_in_the_v1_freezer_by_its_dead_worker_is_thawed_and_removed()
    {
        var v1 = CgroupMounts.Machine as CgroupV1 ?? (CgroupMounts.Machine as CgroupHybrid)?.Controllers;
        Assert.True(v1?.Mounts.ContainsKey("freezer") == true, "this machine has the v1 freezer (facts.md)");
        _id = await _engine.Containers.StartAsync(
            new ContainerSpec(Busybox, ["sh", "-c", "while :; do busybox usleep 100000; done"], new Dictionary<string, string>(), [], new Resources(1, 64L * 1024 * 1024, TimeSpan.FromMinutes(5), 50), new Dictionary<string, string>()),
            CancellationToken.None);
        var cgroup = _engine.Idle.FindContainer(_id);
        Assert.NotNull(cgroup);

        // Frozen as the dead worker froze it: FROZEN in its v1 freezer.state.
        Assert.True(v1!.Freeze(cgroup, frozen: true));
        var clock = Stopwatch.StartNew();
        while (v1.FreezerState(cgroup) != FreezerState.Frozen)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"the container to be frozen ({v1.FreezerState(cgroup)})");
            await Task.Delay(50);
        }

        var removed = await _engine.Sweep.RemoveLeftoversAsync(owner => owner == ProcessOwner.Current, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(90));

        Assert.True(removed >= 1, $"removed {removed}");
        Assert.Empty(await _docker.Containers.ListContainersAsync(new ContainersListParameters { All = true, Filters = new Dictionary<string, IDictionary<string, bool>> { ["id"] = new Dictionary<string, bool> { [_id] = true } } }));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        // Never leave a frozen container behind a failed assertion: thawed in both freezers, then removed.
        if (_id is not null && _engine.Idle.FindContainer(_id) is { } cgroup)
        {
            _engine.Idle.Hierarchy.Freeze(cgroup, frozen: false);
            (CgroupMounts.Machine as CgroupHybrid)?.Controllers.Freeze(cgroup, frozen: false);
        }

        if (_id is not null)
        {
            try
            {
                await _docker.Containers.RemoveContainerAsync(_id, new ContainerRemoveParameters { Force = true });
            }
            catch (DockerApiException)
            {
                // Already gone.
            }
        }

        foreach (var folder in _engine.Idle.Hierarchy.Folders(_engine.Idle.Path).Where(Directory.Exists))
        {
            CgroupFile.TryRemove(folder);
        }

        _engine.Dispose();
        _docker.Dispose();
    }
}
