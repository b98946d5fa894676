using Pipelines.Containers;

namespace Pipelines.Tests.Containers;

/// <summary>
/// The kernel's block I/O files as CgroupMeter reads them, in the formats Linux writes (cgroup v2
/// io.stat); the counters themselves are read from real containers in DockerRuntimeTests.
/// </summary>
public sealed class CgroupMeterTests
{
    [Fact]
    public void A_v2_io_stat_is_summed_over_its_devices_and_an_empty_one_is_no_io()
    {
        var text = "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n"
            + "8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n";

        Assert.Equal((91889664L, 613781504L), CgroupMeter.SumIoStat(text));
        Assert.Equal((0L, 0L), CgroupMeter.SumIoStat(""));
    }

    [Fact]
    public void Empty_attempt_cgroups_left_for_a_minute_are_removed_and_one_holding_a_container_is_not()
    {
        var idle = new IdleCgroup("pipelines-tests-meter", "test", Idle: false);
        var left = CgroupMeter.NewAttempt(idle);
        var busy = CgroupMeter.NewAttempt(idle);
        var hierarchies = IdleCgroup.IsV2 ? [IdleCgroup.Root] : Directory.EnumerateDirectories(IdleCgroup.Root).ToList();
        try
        {
            // As the engine makes them: the attempt's cgroup in every hierarchy, the container's inside.
            foreach (var h in hierarchies)
            {
                Directory.CreateDirectory(Path.Combine(h, left.Trim('/')));
                Directory.CreateDirectory(Path.Combine(h, busy.Trim('/'), "container"));
            }

            Assert.Equal(0, CgroupMeter.RemoveLeftovers(idle, DateTime.UtcNow));
            Assert.InRange(CgroupMeter.RemoveLeftovers(idle, DateTime.UtcNow.AddMinutes(2)), 1, hierarchies.Count);
            Assert.All(hierarchies, h => Assert.False(Directory.Exists(Path.Combine(h, left.Trim('/')))));
            Assert.All(hierarchies, h => Assert.True(Directory.Exists(Path.Combine(h, busy.Trim('/'), "container"))));
        }
        finally
        {
            foreach (var h in hierarchies)
            {
                foreach (var dir in new[] { Path.Combine(h, busy.Trim('/'), "container"), Path.Combine(h, busy.Trim('/')), Path.Combine(h, left.Trim('/')), Path.Combine(h, idle.Parent) })
                {
                    if (Directory.Exists(dir))
                    {
                        Directory.Delete(dir);
                    }
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
        Assert.Matches("^/pipelines/attempt-[0-9a-f]{32}$", CgroupMeter.NewAttempt(local));
    }
}
