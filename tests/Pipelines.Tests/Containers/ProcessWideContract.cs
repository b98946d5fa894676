using System.Collections.Concurrent;
using Pipelines.Containers;
using Pipelines.Tests.Support;
using Pipelines.Tests.Worker.Parts;

namespace Pipelines.Tests.Containers;

/// <summary>
/// What the verbs that act on many containers at once promise (suspend and resume of the
/// engine's containers, for the harvester; the sweep of dead processes' leftovers), against the
/// real Docker engine and the scripted engine. On Docker the sweep acts on every container this
/// test process has there, so that suite runs in the "harvest" collection, alone.
/// </summary>
public abstract class ProcessWideContract : ContainerContract
{
    [Fact]
    public async Task Suspend_holds_this_processs_running_containers_until_resume_and_the_time_held_is_counted()
    {
        var id = await StartAsync("sleep 60");
        var clock = Seams.Containers.Suspensions;
        var before = clock.Total;

        Assert.Equal(1, await Seams.Suspender.SuspendAllAsync(None));
        var held = await InspectAsync(id);
        var runningWhileHeld = clock.WhenRunning.IsCompleted;
        Assert.Equal(1, await Seams.Suspender.ResumeAllAsync(None));
        var resumed = await InspectAsync(id);

        Assert.Equal(ContainerRunState.Paused, held.State);
        Assert.False(runningWhileHeld);
        Assert.Equal(ContainerRunState.Running, resumed.State);
        Assert.True(clock.WhenRunning.IsCompleted);
        Assert.True(clock.Total > before, $"{clock.Total} held in all, {before} before");
    }

    [Fact]
    public async Task The_sweep_removes_the_containers_whose_owner_is_gone_and_leaves_those_of_live_owners()
    {
        var id = await StartAsync("sleep 60");
        var owners = new ConcurrentBag<string?>();

        var noneGone = await Seams.Sweep.RemoveLeftoversAsync(_ => false, None);
        var kept = await InspectAsync(id);
        var removed = await Seams.Sweep.RemoveLeftoversAsync(
            owner =>
            {
                owners.Add(owner);
                return owner == ProcessOwner.Current;
            },
            None);

        Assert.Equal(0, noneGone);
        Assert.Equal(ContainerRunState.Running, kept.State);
        Assert.True(removed >= 1, $"removed {removed}");
        Assert.Contains(ProcessOwner.Current, owners);
        Assert.Null(await Seams.Containers.InspectAsync(id, None));
    }
}

/// <summary>The process-wide verbs against the real Docker engine, alone in the "harvest" collection.</summary>
[Collection("harvest")]
[Integration]
public sealed class DockerProcessWideContractTests : ProcessWideContract
{
    private readonly DockerEngine _engine = new(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint, CgroupParent = "pipelines-seams-tests" });

    private protected override ContainerSeams Seams => ContainerSeams.Of(_engine);

    public override async Task DisposeAsync()
    {
        // Never leave a container frozen behind a failed assertion.
        await _engine.Suspender.ResumeAllAsync(None);
        await base.DisposeAsync();
        _engine.Dispose();
    }
}

/// <summary>The process-wide verbs against the scripted engine, whose containers are its own alone.</summary>
[Unit]
public sealed class ScriptedProcessWideContractTests : ProcessWideContract
{
    private readonly ScriptedRuntime _engine = new(ScriptedRuntime.Shell);

    public ScriptedProcessWideContractTests() => _engine.AddImage(Present);

    private protected override ContainerSeams Seams => new(_engine, _engine, _engine, _engine, _engine, _engine);
}
