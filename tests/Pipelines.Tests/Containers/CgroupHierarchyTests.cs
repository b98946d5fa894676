using Pipelines.Containers;
using Pipelines.Containers.Cgroups;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Containers;

/// <summary>
/// The three kinds of cgroup hierarchy against the kernel's documented file formats
/// (Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/*.rst), in a temporary folder laid out
/// as the kernel lays out its files: what this machine keeps on v1 (a v2 cpu, memory and io
/// controller) is checked here against the rule only. The v2 files this machine does have (the
/// freezer, cgroup.kill, cpu.stat) are read and written on real containers in CgroupV2ContainerTests.
/// </summary>
[Integration]
public sealed class CgroupHierarchyTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Fact]
    public void The_mount_table_says_whether_a_machine_is_v2_v1_or_hybrid()
    {
        // Debian 12 and Ubuntu 22.04 or later: the unified hierarchy alone.
        var v2 = CgroupMounts.Detect(["33 24 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot"]);
        Assert.Equal("/sys/fs/cgroup", Assert.IsType<CgroupV2>(v2).Root);
        Assert.Equal("cgroup v2", v2.Name);

        // systemd's hybrid mode (Ubuntu 20.04, this machine): v1 controllers, cpu and cpuacct on one mount, and a v2 tree.
        var hybrid = Assert.IsType<CgroupHybrid>(CgroupMounts.Detect([
            "25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755",
            "26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate",
            "27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd",
            "31 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct",
            "32 25 0:30 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,freezer",
            "33 25 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,memory",
        ]));
        Assert.Equal("/sys/fs/cgroup/unified", hybrid.Tree.Root);
        Assert.Equal("/sys/fs/cgroup/cpu,cpuacct/pipelines", hybrid.CpuFolder("/pipelines"));
        Assert.Equal("/sys/fs/cgroup/cpu,cpuacct/pipelines", hybrid.Controllers.PathOf("cpuacct", "pipelines"));
        Assert.DoesNotContain("xattr", hybrid.Controllers.Mounts.Keys);
        Assert.Equal(["/sys/fs/cgroup/cpu,cpuacct/p", "/sys/fs/cgroup/freezer/p", "/sys/fs/cgroup/memory/p", "/sys/fs/cgroup/systemd/p", "/sys/fs/cgroup/unified/p"], hybrid.Folders("p").Order(StringComparer.Ordinal));

        // v1 alone (RHEL 7), and a mount point with a space in it, as mountinfo escapes it.
        var v1 = Assert.IsType<CgroupV1>(CgroupMounts.Detect([
            "30 25 0:26 / /cgroups/cpu\\040set rw,relatime - cgroup cgroup rw,cpu",
            "31 25 0:27 / /cgroups/mem rw,relatime - cgroup cgroup rw,memory,release_agent=/bin/x",
        ]));
        Assert.Equal("/cgroups/cpu set/p", v1.CpuFolder("p"));
        Assert.Equal(["cpu", "memory"], v1.Mounts.Keys.Order(StringComparer.Ordinal));

        // None at all (a container without /sys/fs/cgroup): nothing can be read or made.
        var none = CgroupMounts.Detect(["22 1 0:20 / /proc rw - proc proc rw"]);
        Assert.Null(none.CpuFolder("p"));
        Assert.False(none.Make("p"));
        Assert.Null(none.CpuNanos("p"));
    }

    [Fact]
    public void On_v2_the_parent_is_made_with_the_controllers_handed_down_and_set_in_the_idle_class()
    {
        var root = V2Root(controllers: "cpuset cpu io memory hugetlb pids rdma");
        var idle = IdleCgroup.Prepare("pipelines", "unix:///var/run/docker.sock", idle: true, () => CgroupDriver.Cgroupfs, new CgroupV2(root));

        Assert.True(idle.Idle);
        Assert.Equal($"cpu.idle=1 on {root}/pipelines (cgroup v2, the engine's cgroup driver cgroupfs): the kernel's idle class, the owner always first", idle.Mode);
        Assert.Equal("1", CgroupFile.Read(Path.Combine(root, "pipelines", "cpu.idle")));

        // Each wanted controller the root has is handed down by a write of its own (a write naming one the parent lacks fails whole).
        Assert.Equal("+pids", CgroupFile.Read(Path.Combine(root, "cgroup.subtree_control")));
        Assert.Equal("/pipelines", idle.Path);
        Assert.Equal("/pipelines", idle.EngineParent);
        Assert.Equal("/pipelines/abc", idle.ContainerCgroup("abc"));
    }

    [Fact]
    public void On_v2_a_kernel_without_cpu_idle_gets_the_lowest_cpu_weight_and_policy_always_a_parent_of_its_own()
    {
        var root = V2Root(controllers: "cpu memory");

        // A kernel before 5.15 has no cpu.idle: writing it fails (here, a folder in its place).
        Directory.CreateDirectory(Path.Combine(root, "pipelines", "cpu.idle"));
        var lowest = IdleCgroup.Prepare("pipelines", "unix:///var/run/docker.sock", idle: true, () => CgroupDriver.Cgroupfs, new CgroupV2(root));
        Assert.False(lowest.Idle);
        Assert.StartsWith($"cpu.weight=1 on {root}/pipelines (cgroup v2, the engine's cgroup driver cgroupfs; no cpu.idle in this kernel)", lowest.Mode, StringComparison.Ordinal);
        Assert.Equal("1", CgroupFile.Read(Path.Combine(root, "pipelines", "cpu.weight")));
        Assert.Equal("+memory", CgroupFile.Read(Path.Combine(root, "cgroup.subtree_control")));

        var always = IdleCgroup.Prepare("pipelines", "unix:///var/run/docker.sock", idle: false, () => CgroupDriver.Cgroupfs, new CgroupV2(root));
        Assert.Equal("pipelines-always", always.Parent);
        Assert.Equal("0", CgroupFile.Read(Path.Combine(root, "pipelines-always", "cpu.idle")));
        Assert.StartsWith($"normal weight on {root}/pipelines-always", always.Mode, StringComparison.Ordinal);
    }

    [Fact]
    public void On_v2_the_counters_come_from_cpu_stat_memory_peak_and_io_stat()
    {
        var root = V2Root(controllers: "cpu io memory pids");
        var v2 = new CgroupV2(root);
        var attempt = Path.Combine(root, "pipelines", "attempt-1");
        Write(attempt, "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n");
        Write(attempt, "memory.peak", "104857600\n");
        Write(attempt, "memory.current", "52428800\n");
        Write(attempt, "memory.stat", "anon 40000000\nfile 12428800\nkernel 1000000\ninactive_anon 0\nactive_anon 40000000\ninactive_file 10000000\nactive_file 2428800\n");
        Write(attempt, "io.stat", "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n");

        var reading = v2.Read("/pipelines/attempt-1");
        Assert.Equal(new CgroupReading(2_500_000_000, 104_857_600, 91_889_664, 613_781_504, []), reading with { Notes = [] });
        Assert.Empty(reading.Notes);
        Assert.Equal(2_500_000_000, v2.CpuNanos("/pipelines/attempt-1"));
        Assert.Equal(42_428_800, v2.WorkingSet("/pipelines/attempt-1"));
        Assert.False(v2.ResetPeak("/pipelines/attempt-1"));

        // An empty io.stat is no I/O; a kernel without memory.peak (before 5.19) and a cgroup
        // without the io controller are said, never a zero.
        File.WriteAllText(Path.Combine(attempt, "io.stat"), "");
        Assert.Equal((0L, 0L), (v2.Read("/pipelines/attempt-1").ReadBytes!.Value, v2.Read("/pipelines/attempt-1").WrittenBytes!.Value));
        File.Delete(Path.Combine(attempt, "io.stat"));
        File.Delete(Path.Combine(attempt, "memory.peak"));
        var partial = v2.Read("/pipelines/attempt-1");
        Assert.Null(partial.PeakMemoryBytes);
        Assert.Null(partial.ReadBytes);
        Assert.Equal(2_500_000_000, partial.CpuNanos);
        Assert.Contains(partial.Notes, n => n.StartsWith($"peak memory not measured: {attempt}/memory.peak cannot be read (memory.peak needs Linux 5.19", StringComparison.Ordinal));
        Assert.Contains(partial.Notes, n => n.StartsWith($"bytes read and written not measured: {attempt}/io.stat cannot be read", StringComparison.Ordinal));
    }

    [Fact]
    public void On_v2_a_byte_through_LVM_is_counted_once_not_on_the_volume_and_again_on_its_disk()
    {
        // sysfs as the kernel lays it out for an LVM volume dm-0 (253:0) on the partition sda2 of
        // sda (8:0), a volume dm-1 (253:1) stacked on dm-0, and a disk sdb (8:16) of its own:
        // /sys/dev/block/MAJ:MIN links to the device's folder, whose slaves/ links to the devices under it.
        var sys = _temp.Combine("sys");
        var block = Path.Combine(sys, "devices", "virtual", "block");
        var sda = Path.Combine(sys, "devices", "pci0000:00", "block", "sda");
        Write(sda, "dev", "8:0\n");
        Write(Path.Combine(sda, "sda2"), "dev", "8:2\n");
        Write(Path.Combine(sda, "sda2"), "partition", "2\n");
        Write(Path.Combine(sys, "devices", "pci0000:00", "block", "sdb"), "dev", "8:16\n");
        Write(Path.Combine(block, "dm-0"), "dev", "253:0\n");
        Write(Path.Combine(block, "dm-1"), "dev", "253:1\n");
        Directory.CreateDirectory(Path.Combine(block, "dm-0", "slaves"));
        Directory.CreateDirectory(Path.Combine(block, "dm-1", "slaves"));
        Directory.CreateSymbolicLink(Path.Combine(block, "dm-0", "slaves", "sda2"), Path.Combine(sda, "sda2"));
        Directory.CreateSymbolicLink(Path.Combine(block, "dm-1", "slaves", "dm-0"), Path.Combine(block, "dm-0"));
        Directory.CreateDirectory(Path.Combine(sys, "dev", "block"));
        foreach (var (number, folder) in new[] { ("8:0", sda), ("8:2", Path.Combine(sda, "sda2")), ("8:16", Path.Combine(sys, "devices", "pci0000:00", "block", "sdb")), ("253:0", Path.Combine(block, "dm-0")), ("253:1", Path.Combine(block, "dm-1")) })
        {
            Directory.CreateSymbolicLink(Path.Combine(sys, "dev", "block", number), folder);
        }

        // The kernel's sample lines (cgroup-v2.rst, "io.stat"), with a write through dm-1 that
        // dm-0 and sda were charged for again, and sdb's own.
        const string ioStat = "253:1 rbytes=4096 wbytes=1048576 rios=1 wios=16 dbytes=0 dios=0\n253:0 rbytes=4096 wbytes=1048576 rios=1 wios=16 dbytes=0 dios=0\n8:0 rbytes=4096 wbytes=1048576 rios=1 wios=8 dbytes=0 dios=0\n8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n";

        Assert.Equal((1_459_200L + 4096, 314_773_504L + 1_048_576), CgroupV2.SumIoStat(ioStat, sys));

        // Without the stack (plain disks), every line counts.
        Assert.Equal((1_459_200L + 4096, 314_773_504L + 1_048_576), CgroupV2.SumIoStat("8:0 rbytes=4096 wbytes=1048576\n8:16 rbytes=1459200 wbytes=314773504\n", sys));
    }

    [Fact]
    public void On_v2_the_freezer_is_cgroup_freeze_and_cgroup_events_says_when_it_is_done()
    {
        var root = V2Root(controllers: "");
        var v2 = new CgroupV2(root);
        var container = Path.Combine(root, "pipelines", "abc");
        Write(container, "cgroup.freeze", "0\n");
        Write(container, "cgroup.events", "populated 1\nfrozen 0\n");
        Write(container, "cgroup.kill", "");
        Assert.Equal(FreezerState.Thawed, v2.FreezerState("/pipelines/abc"));

        Assert.True(v2.Freeze("/pipelines/abc", frozen: true));
        Assert.Equal("1", CgroupFile.Read(Path.Combine(container, "cgroup.freeze")));
        Assert.Equal(FreezerState.Freezing, v2.FreezerState("/pipelines/abc"));
        File.WriteAllText(Path.Combine(container, "cgroup.events"), "populated 1\nfrozen 1\n");
        Assert.Equal(FreezerState.Frozen, v2.FreezerState("/pipelines/abc"));

        Assert.True(v2.Kill("/pipelines/abc"));
        Assert.Equal("1", CgroupFile.Read(Path.Combine(container, "cgroup.kill")));
        Assert.True(v2.Freeze("/pipelines/abc", frozen: false));
        Assert.Equal(FreezerState.Thawed, v2.FreezerState("/pipelines/abc"));

        // A container that has ended: its cgroup is gone, and nothing is written in its place.
        Assert.Equal(FreezerState.Gone, v2.FreezerState("/pipelines/gone"));
        Assert.False(v2.Freeze("/pipelines/gone", frozen: true));
        Assert.False(Directory.Exists(Path.Combine(root, "pipelines", "gone")));
    }

    [Fact]
    public void On_v1_the_counters_are_cpuacct_and_memory_max_usage_the_freezer_is_freezer_state_and_nothing_kills_a_cgroup()
    {
        var v1 = new CgroupV1(new Dictionary<string, string>
        {
            ["cpu"] = _temp.Combine("cpu"),
            ["cpuacct"] = _temp.Combine("cpuacct"),
            ["memory"] = _temp.Combine("memory"),
            ["freezer"] = _temp.Combine("freezer"),
        });
        Write(_temp.Combine("cpuacct", "p", "a"), "cpuacct.usage", "2500000000\n");
        Write(_temp.Combine("memory", "p", "a"), "memory.max_usage_in_bytes", "104857600\n");
        Write(_temp.Combine("memory", "p", "a"), "memory.usage_in_bytes", "52428800\n");
        Write(_temp.Combine("memory", "p", "a"), "memory.stat", "cache 12428800\nrss 40000000\ninactive_file 1\ntotal_inactive_file 10000000\n");
        Write(_temp.Combine("freezer", "p", "a"), "freezer.state", "THAWED\n");

        var reading = v1.Read("/p/a");
        Assert.Equal((2_500_000_000L, 104_857_600L), (reading.CpuNanos!.Value, reading.PeakMemoryBytes!.Value));
        Assert.Null(reading.ReadBytes);
        Assert.Equal([CgroupV1.NoBlockIo], reading.Notes);
        Assert.Equal(42_428_800, v1.WorkingSet("/p/a"));
        Assert.True(v1.ResetPeak("/p/a"));
        Assert.Equal("0", CgroupFile.Read(_temp.Combine("memory", "p", "a", "memory.max_usage_in_bytes")));

        Assert.Equal(FreezerState.Thawed, v1.FreezerState("/p/a"));
        Assert.True(v1.Freeze("/p/a", frozen: true));
        Assert.Equal("FROZEN", CgroupFile.Read(_temp.Combine("freezer", "p", "a", "freezer.state")));
        File.WriteAllText(_temp.Combine("freezer", "p", "a", "freezer.state"), "FREEZING\n");
        Assert.Equal(FreezerState.Freezing, v1.FreezerState("/p/a"));
        Assert.False(v1.Kill("/p/a"));
        Assert.Equal(("cpu.shares", "2"), v1.LowestWeight);

        // A missing counter is a note naming its file, not a zero.
        var gone = v1.Read("/p/gone");
        Assert.Null(gone.CpuNanos);
        Assert.Contains($"CPU time not measured: {_temp.Combine("cpuacct", "p", "gone", "cpuacct.usage")} cannot be read", gone.Notes);
    }

    [Fact]
    public void A_kept_set_of_counter_files_reads_each_again_from_its_start_and_reads_what_direct_reads()
    {
        // As the warm pool reads a container's counters before and after each request: opened once, read again at offset 0.
        var v1 = new CgroupV1(new Dictionary<string, string> { ["cpuacct"] = _temp.Combine("cpuacct"), ["memory"] = _temp.Combine("memory") });
        var cpu = _temp.Combine("cpuacct", "p", "a");
        var memory = _temp.Combine("memory", "p", "a");
        Write(cpu, "cpuacct.usage", "2500000000\n");
        Write(memory, "memory.max_usage_in_bytes", "104857600\n");
        using var kept = CgroupFiles.Kept();

        var first = v1.Read("/p/a", kept);
        Assert.Equal((2_500_000_000L, 104_857_600L), (first.CpuNanos!.Value, first.PeakMemoryBytes!.Value));
        Assert.True(v1.ResetPeak("/p/a", kept));
        Assert.Equal("0", CgroupFile.Read(Path.Combine(memory, "memory.max_usage_in_bytes")));

        // The same files, changed in place (as the kernel's counters are): the kept set reads the new values from their start.
        File.WriteAllText(Path.Combine(cpu, "cpuacct.usage"), "7\n");
        File.WriteAllText(Path.Combine(memory, "memory.max_usage_in_bytes"), "123456789012\n");
        var second = v1.Read("/p/a", kept);
        Assert.Equal((7L, 123_456_789_012L), (second.CpuNanos!.Value, second.PeakMemoryBytes!.Value));
        Assert.Equal((second.CpuNanos, second.PeakMemoryBytes), (v1.Read("/p/a").CpuNanos, v1.Read("/p/a").PeakMemoryBytes));

        // A file that is not there is a note, as read directly, and is looked for again next time.
        var gone = v1.Read("/p/gone", kept);
        Assert.Null(gone.CpuNanos);
        Assert.Equal(v1.Read("/p/gone").Notes, gone.Notes);
        Write(_temp.Combine("cpuacct", "p", "gone"), "cpuacct.usage", "5\n");
        Assert.Equal(5L, v1.Read("/p/gone", kept).CpuNanos);

        // v2's text files (cpu.stat, io.stat) read whole through kept files, longer than one read's buffer too.
        var v2 = new CgroupV2(_temp.Combine("v2"));
        var attempt = _temp.Combine("v2", "p", "b");
        var devices = string.Concat(Enumerable.Range(0, 200).Select(i => $"7:{i} rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n"));
        Write(attempt, "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\n");
        Write(attempt, "memory.peak", "1048576\n");
        Write(attempt, "io.stat", devices);
        var direct = v2.Read("/p/b");
        var viaKept = v2.Read("/p/b", kept);
        Assert.Equal((direct.CpuNanos, direct.PeakMemoryBytes, direct.ReadBytes, direct.WrittenBytes), (viaKept.CpuNanos, viaKept.PeakMemoryBytes, viaKept.ReadBytes, viaKept.WrittenBytes));
        Assert.Equal((2_500_000_000L, 200L, 400L), (viaKept.CpuNanos!.Value, viaKept.ReadBytes!.Value, viaKept.WrittenBytes!.Value));
    }

    [Fact]
    public void On_a_hybrid_machine_a_cgroup_in_the_v2_tree_is_frozen_there_and_one_only_on_v1_through_freezer_state()
    {
        var v1 = new CgroupV1(new Dictionary<string, string> { ["freezer"] = _temp.Combine("freezer"), ["cpu"] = _temp.Combine("cpu") });
        var tree = new CgroupV2(_temp.Combine("unified"));
        var hybrid = new CgroupHybrid(v1, tree);
        Write(_temp.Combine("freezer", "p", "mirrored"), "freezer.state", "THAWED\n");
        Write(_temp.Combine("unified", "p", "mirrored"), "cgroup.freeze", "0\n");
        Write(_temp.Combine("freezer", "p", "v1only"), "freezer.state", "THAWED\n");

        Assert.True(hybrid.Freeze("/p/mirrored", frozen: true));
        Assert.Equal("1", CgroupFile.Read(_temp.Combine("unified", "p", "mirrored", "cgroup.freeze")));
        Assert.Equal("THAWED", CgroupFile.Read(_temp.Combine("freezer", "p", "mirrored", "freezer.state")));
        Assert.True(hybrid.Freeze("/p/v1only", frozen: true));
        Assert.Equal("FROZEN", CgroupFile.Read(_temp.Combine("freezer", "p", "v1only", "freezer.state")));
        Assert.Equal(("cpu.shares", "2"), hybrid.LowestWeight);
        Assert.Equal(_temp.Combine("cpu", "p"), hybrid.CpuFolder("p"));
    }

    public void Dispose() => _temp.Dispose();

    /// <summary>A v2 root as the kernel shows it: the controllers it has, and its subtree_control.</summary>
    private string V2Root(string controllers)
    {
        var root = _temp.Combine("v2");
        Write(root, "cgroup.controllers", controllers + "\n");
        Write(root, "cgroup.subtree_control", "\n");
        return root;
    }

    private static void Write(string dir, string file, string content)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, file), content);
    }
}
