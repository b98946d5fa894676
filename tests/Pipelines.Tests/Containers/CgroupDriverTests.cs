using System.Net;
using Docker.DotNet;
using Microsoft.Extensions.Time.Testing;
using Pipelines.Containers;
using Pipelines.Containers.Cgroups;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Containers;

/// <summary>
/// The engine's cgroup driver: read from the real engine (cgroupfs on this machine), and the names
/// of our parents under systemd's driver checked against the rule Docker applies (moby's check of a
/// systemd cgroup parent and runc's ExpandSlice), since this machine cannot run systemd as PID 1.
/// </summary>
[Integration]
public sealed class CgroupDriverTests
{
    [Fact]
    public async Task The_driver_is_the_one_the_real_engine_reports_and_names_the_parent_as_that_driver_takes_it()
    {
        using var client = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        var info = await client.System.GetSystemInfoAsync();

        var driver = CgroupDriver.Ask(client, CgroupMounts.Machine, TimeSpan.FromSeconds(30));
        Assert.Equal(info.CgroupDriver, driver.Name);
        Assert.Equal($"the engine's cgroup driver {info.CgroupDriver}", driver.Said);

        using var runtime = new DockerEngine(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint, CgroupParent = "pipelines-cg2-driver", IdleClass = false });
        Assert.Equal(driver, runtime.Idle.Driver);
        Assert.Contains($"the engine's cgroup driver {info.CgroupDriver}", runtime.Idle.Mode, StringComparison.Ordinal);
        Assert.Equal(driver.IsSystemd ? "pipelines_cg2_driver_always.slice" : "/pipelines-cg2-driver-always", runtime.Idle.EngineParent);
        foreach (var folder in runtime.Idle.Hierarchy.Folders(runtime.Idle.Path))
        {
            CgroupFile.TryRemove(folder);
        }
    }

    [Fact]
    public void An_engine_that_does_not_answer_is_taken_to_use_Dockers_default_and_says_so()
    {
        using var client = new DockerClientBuilder().WithEndpoint(new Uri("unix:///nonexistent/docker.sock")).Build();
        var driver = CgroupDriver.Ask(client, new CgroupV1(new Dictionary<string, string>()), TimeSpan.FromSeconds(5));

        // Docker's default on a cgroup v1 machine is cgroupfs (systemd only where systemd boots v2).
        Assert.Equal("cgroupfs", driver.Name);
        Assert.StartsWith("assumed (the engine did not say: ", driver.Said, StringComparison.Ordinal);
        Assert.EndsWith("Docker's default cgroup driver cgroupfs", driver.Said, StringComparison.Ordinal);
        Assert.Equal("cgroupfs", CgroupDriver.FromEngine("cgroupfs").Name);
        Assert.True(CgroupDriver.FromEngine("systemd").IsSystemd);
        Assert.Equal("the engine said 'none', taken as the cgroup driver cgroupfs", CgroupDriver.FromEngine("none").Said);
    }

    [Fact]
    public void A_driver_assumed_because_the_engine_did_not_answer_is_asked_again_not_kept_for_good()
    {
        // The engine's socket is not there at first (a slow or restarting engine), then is.
        using var temp = new TempFolder();
        var socket = temp.Combine("docker.sock");
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var engine = new DockerEngine(new DockerOptions { Endpoint = $"unix://{socket}", CgroupParent = "pipelines-cg2-reask", IdleClass = false }, time);
        try
        {
            var assumed = engine.Idle;
            Assert.True(assumed.Driver.Assumed);
            Assert.StartsWith("assumed (the engine did not say: ", assumed.Driver.Said, StringComparison.Ordinal);

            File.CreateSymbolicLink(socket, TestEnvironment.DockerEndpoint["unix://".Length..]);

            // Not asked at every use: once the wait is over.
            Assert.Same(assumed, engine.Idle);
            time.Advance(DockerEngine.AskAgainEvery);
            var asked = engine.Idle;

            Assert.False(asked.Driver.Assumed);
            Assert.StartsWith("the engine's cgroup driver ", asked.Driver.Said, StringComparison.Ordinal);
            Assert.Contains(asked.Driver.Said, asked.Mode, StringComparison.Ordinal);
            Assert.Same(asked, engine.Idle);
        }
        finally
        {
            foreach (var folder in engine.Idle.Hierarchy.Folders(engine.Idle.Path).Where(Directory.Exists))
            {
                CgroupFile.TryRemove(folder);
            }
        }
    }

    [Fact]
    public void A_parent_the_engine_refuses_is_said_with_the_driver_it_was_named_for_and_why_that_one()
    {
        using var temp = new TempFolder();
        using var engine = new DockerEngine(new DockerOptions { Endpoint = $"unix://{temp.Combine("none.sock")}", CgroupParent = "pipelines-cg2-refused", IdleClass = false });
        try
        {
            // moby's answer on its systemd driver to a parent named for cgroupfs (daemon/daemon_unix.go).
            var moby = new DockerApiException(HttpStatusCode.BadRequest, "{\"message\":\"cgroup-parent for systemd cgroup should be a valid slice named as \\\"xxx.slice\\\"\"}");
            var refused = engine.ParentRefused(moby, "/pipelines-cg2-refused-always");

            Assert.NotNull(refused);
            Assert.StartsWith("the Docker engine refused the cgroup parent /pipelines-cg2-refused-always ({\"message\":\"cgroup-parent for systemd cgroup should be a valid slice", refused.Message, StringComparison.Ordinal);
            Assert.Contains("): it was named for assumed (the engine did not say: ", refused.Message, StringComparison.Ordinal);
            Assert.EndsWith("Docker's default cgroup driver cgroupfs; the engine is asked for its driver again before the next container", refused.Message, StringComparison.Ordinal);
            Assert.True(refused.RetryHelps);

            // Any other refusal is not about the parent.
            Assert.Null(engine.ParentRefused(new DockerApiException(HttpStatusCode.BadRequest, "{\"message\":\"invalid mount config\"}"), "/pipelines-cg2-refused-always"));
        }
        finally
        {
            foreach (var folder in engine.Idle.Hierarchy.Folders(engine.Idle.Path).Where(Directory.Exists))
            {
                CgroupFile.TryRemove(folder);
            }
        }
    }

    [Theory]
    [InlineData("pipelines.slice", "/pipelines.slice")]
    [InlineData("test-a-b.slice", "/test.slice/test-a.slice/test-a-b.slice")]
    [InlineData("pipelines_always.slice", "/pipelines_always.slice")]
    [InlineData("-.slice", "/")]
    public void A_slice_is_placed_as_runc_expands_it(string slice, string path) =>
        Assert.Equal(path, CgroupDriver.ExpandSlice(slice, slice));

    [Theory]
    [InlineData("pipelines", "is not a slice: the engine's systemd cgroup driver takes a cgroup parent only as a valid slice named as \"xxx.slice\"")]
    [InlineData(".slice", "is not a slice")]
    [InlineData("pipelines.slic", "is not a slice")]
    [InlineData("a--b.slice", "has an empty part between dashes")]
    [InlineData("-a.slice", "has an empty part between dashes")]
    [InlineData("a-.slice", "has an empty part between dashes")]
    [InlineData("a/b.slice", "has a character systemd does not take")]
    [InlineData("my pipes.slice", "has a character systemd does not take")]
    public void A_name_docker_or_runc_would_refuse_is_refused_first_with_the_rule(string slice, string why)
    {
        var e = Assert.Throws<PipelinesException>(() => CgroupDriver.ExpandSlice(slice, slice));
        Assert.StartsWith($"Docker:CgroupParent '{slice}': '{slice}' {why}", e.Message, StringComparison.Ordinal);
        Assert.False(e.RetryHelps);
    }

    [Fact]
    public void Under_systemd_our_parents_are_slices_docker_takes_and_the_always_one_is_not_under_the_idle_one()
    {
        var systemd = CgroupDriver.Systemd;
        var idle = systemd.ParentName("pipelines", idle: true);
        var always = systemd.ParentName("pipelines", idle: false);
        Assert.Equal(("pipelines.slice", "/pipelines.slice"), (idle, systemd.PathOf(idle)));
        Assert.Equal(("pipelines_always.slice", "/pipelines_always.slice"), (always, systemd.PathOf(always)));
        Assert.Equal("pipelines.slice", systemd.EngineParent(idle));
        Assert.Equal("/pipelines.slice/docker-abc.scope", systemd.ContainerCgroup(systemd.PathOf(idle), "abc"));

        // An attempt's slice nests in its parent's, and so is in its class.
        var (engine, path) = systemd.NewAttempt(idle);
        Assert.Matches("^pipelines-attempt_[0-9a-f]{32}\\.slice$", engine);
        Assert.Equal($"/pipelines.slice/{engine}", path);
        Assert.True(systemd.IsAttempt(idle, engine));
        Assert.False(systemd.IsAttempt(idle, "docker-abc.scope"));
        var (alwaysAttempt, alwaysPath) = systemd.NewAttempt(always);
        Assert.StartsWith("/pipelines_always.slice/pipelines_always-attempt_", alwaysPath, StringComparison.Ordinal);

        // A slice written by the user nests where its dashes say; the always one beside it, not in it.
        var nested = systemd.ParentName("batch-pipelines.slice", idle: true);
        var nestedAlways = systemd.ParentName("batch-pipelines.slice", idle: false);
        Assert.Equal("/batch.slice/batch-pipelines.slice", systemd.PathOf(nested));
        Assert.Equal("/batch.slice/batch-pipelines_always.slice", systemd.PathOf(nestedAlways));

        // Every name given to the engine passes moby's check: longer than 6, ending in ".slice".
        Assert.All(new[] { idle, always, engine, alwaysAttempt, nested, nestedAlways }, name => Assert.True(name.Length > 6 && name.EndsWith(".slice", StringComparison.Ordinal), name));

        var e = Assert.Throws<PipelinesException>(() => systemd.ParentName("/pipelines/sub", idle: true));
        Assert.Equal("Docker:CgroupParent '/pipelines/sub': the Docker engine uses systemd's cgroup driver, which takes a slice, not a path: write a name such as pipelines.slice (a dash nests: a-b.slice is inside a.slice)", e.Message);
    }

    [Fact]
    public void Under_cgroupfs_our_parents_are_paths_from_the_root_of_each_hierarchy()
    {
        var cgroupfs = CgroupDriver.Cgroupfs;
        Assert.Equal(("pipelines", "pipelines-always"), (cgroupfs.ParentName("/pipelines", idle: true), cgroupfs.ParentName("pipelines", idle: false)));
        Assert.Equal("/pipelines", cgroupfs.EngineParent("pipelines"));
        Assert.Equal("/pipelines/abc", cgroupfs.ContainerCgroup("/pipelines", "abc"));
        var (engine, path) = cgroupfs.NewAttempt("pipelines");
        Assert.Matches("^/pipelines/attempt-[0-9a-f]{32}$", engine);
        Assert.Equal(engine, path);
        Assert.True(cgroupfs.IsAttempt("pipelines", path.Split('/')[^1]));
    }

    [Fact]
    public void Under_systemd_the_idle_class_is_set_on_the_slice_through_systemd_and_a_systemd_that_refuses_is_said()
    {
        using var temp = new TempFolder();
        var v2 = new CgroupV2(temp.Path);

        // This machine's systemctl answers that systemd is not PID 1: the class could not be set, and
        // is read from the slice's files once systemd has made it (SystemdSliceClassTests).
        var refused = IdleCgroup.Prepare("pipelines", "unix:///var/run/docker.sock", idle: true, () => CgroupDriver.Systemd, v2);
        Assert.Equal("pipelines.slice", refused.Parent);
        Assert.False(refused.Idle);
        Assert.StartsWith("pending: pipelines.slice does not exist yet; systemd makes it with the first container, and its class is read from its files then (cgroup v2, the engine's cgroup driver systemd; systemd could not be asked: systemctl set-property --runtime pipelines.slice CPUWeight=idle: ", refused.Mode, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.Combine("pipelines.slice")), "the slice's cgroup is systemd's to make");

        // A slice whose unit says CPUWeight=idle: its cgroup reads cpu.idle 1, and nothing is asked of systemd.
        Directory.CreateDirectory(temp.Combine("pipelines.slice"));
        File.WriteAllText(temp.Combine("pipelines.slice", "cpu.idle"), "1\n");
        var set = IdleCgroup.Prepare("pipelines", "unix:///var/run/docker.sock", idle: true, () => CgroupDriver.Systemd, v2);
        Assert.True(set.Idle);
        Assert.Equal($"cpu.idle=1 on {temp.Combine("pipelines.slice")} (cgroup v2, the engine's cgroup driver systemd; CPUWeight=idle of pipelines.slice): the kernel's idle class, the owner always first", set.Mode);
        Assert.Equal("pipelines.slice", set.EngineParent);
        Assert.Equal("/pipelines.slice/docker-abc.scope", set.ContainerCgroup("abc"));

        var always = IdleCgroup.Prepare("pipelines", "unix:///var/run/docker.sock", idle: false, () => CgroupDriver.Systemd, v2);
        Assert.Equal("pipelines_always.slice", always.Parent);
        Assert.StartsWith("normal weight in pipelines_always.slice (cgroup v2, the engine's cgroup driver systemd;", always.Mode, StringComparison.Ordinal);
    }
}
