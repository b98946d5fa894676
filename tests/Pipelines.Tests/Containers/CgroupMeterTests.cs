using Pipelines.Containers;
using Pipelines.Containers.Cgroups;

namespace Pipelines.Tests.Containers;

/// <summary>
/// The attempt cgroups CgroupMeter makes and removes, on this machine's real hierarchies; the
/// counters themselves are read from real containers in DockerRuntimeTests, and in the kernel's
/// documented formats in CgroupHierarchyTests.
/// </summary>
[Unit]
public sealed class CgroupMeterTests
{
    [Fact]
    public void Empty_attempt_cgroups_left_for_a_minute_are_removed_and_one_holding_a_container_is_not()
    {
        var idle = new IdleCgroup("pipelines-cg2-meter", "test", Idle: false);
        var left = CgroupMeter.NewAttempt(idle).Path;
        var busy = CgroupMeter.NewAttempt(idle).Path;
        var hierarchies = idle.Hierarchy.Folders("/");
        try
        {
            // As the engine makes them: the attempt's cgroup in every hierarchy, the container's inside.
            foreach (var h in hierarchies)
            {
                Directory.CreateDirectory(CgroupFile.Under(h, left));
                Directory.CreateDirectory(Path.Combine(CgroupFile.Under(h, busy), "container"));
            }

            Assert.Equal(0, CgroupMeter.RemoveLeftovers(idle, DateTime.UtcNow));
            Assert.InRange(CgroupMeter.RemoveLeftovers(idle, DateTime.UtcNow.AddMinutes(2)), 1, hierarchies.Count);
            Assert.All(hierarchies, h => Assert.False(Directory.Exists(CgroupFile.Under(h, left))));
            Assert.All(hierarchies, h => Assert.True(Directory.Exists(Path.Combine(CgroupFile.Under(h, busy), "container"))));
        }
        finally
        {
            foreach (var h in hierarchies)
            {
                foreach (var dir in new[] { Path.Combine(CgroupFile.Under(h, busy), "container"), CgroupFile.Under(h, busy), CgroupFile.Under(h, left), CgroupFile.Under(h, idle.Path) })
                {
                    CgroupFile.TryRemove(dir);
                }
            }
        }
    }

    [Fact]
    public void A_runtime_that_cannot_read_its_containers_cgroups_says_why()
    {
        var local = new IdleCgroup("pipelines", "test", Idle: false);
        Assert.Null(CgroupMeter.Unmeasurable(local, "unix:///var/run/docker.sock"));
        Assert.Equal("the Docker engine at tcp://10.0.0.5:2375 is on another machine, whose cgroups this worker cannot read", CgroupMeter.Unmeasurable(local, "tcp://10.0.0.5:2375"));
        Assert.Equal("Docker:CgroupParent is empty, so containers have no cgroup of ours to read", CgroupMeter.Unmeasurable(local with { Parent = "" }, "unix:///var/run/docker.sock"));
        var attempt = CgroupMeter.NewAttempt(local);
        Assert.Matches("^/pipelines/attempt-[0-9a-f]{32}$", attempt.Path);
        Assert.Equal(attempt.Path, attempt.Engine);
    }
}
