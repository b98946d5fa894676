using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Containers.Cgroups;
using Pipelines.Harvest;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Containers;

/// <summary>
/// Under Docker's systemd driver with no systemd to ask (a worker in a container: no systemctl,
/// no host bus), the class of pipelines.slice is the slice unit's own, read from its files once
/// systemd has made it. This machine cannot run systemd as PID 1, so the slice is a real cgroup
/// these tests make, as systemd would, under a parent of their own on the machine's real v1 cpu
/// mount (the v2 tree here has no cpu controller), with cpu.idle and cpu.shares written as
/// systemd writes them for CPUWeight=idle and CPUWeight=1. Without systemctl: PATH holds an
/// empty folder only while the worker asks, so these tests run alone (the "harvest" collection).
/// </summary>
[Collection("harvest")]
[Integration]
public sealed class SystemdSliceClassTests : IDisposable
{
    private const string Socket = "unix:///var/run/docker.sock";
    private readonly string _root;
    private readonly CgroupV1 _machine;
    private readonly TempFolder _emptyPath = new();

    public SystemdSliceClassTests()
    {
        var cpu = ((CgroupV1)(CgroupMounts.Machine is CgroupHybrid hybrid ? hybrid.Controllers : CgroupMounts.Machine)).Mounts["cpu"];
        _root = Path.Combine(cpu, $"pipelines-tests-systemd-{Guid.NewGuid():N}"[..40]);
        Directory.CreateDirectory(_root);
        _machine = new CgroupV1(new Dictionary<string, string>(StringComparer.Ordinal) { ["cpu"] = _root });
    }

    private string Slice => Path.Combine(_root, "pipelines.slice");

    [Fact]
    public void Without_systemctl_the_class_is_pending_until_the_slice_exists_then_read_from_its_files()
    {
        var idle = WithoutSystemctl(() => IdleCgroup.Prepare("pipelines", Socket, idle: true, () => CgroupDriver.Systemd, _machine));

        Assert.Equal("pipelines.slice", idle.Parent);
        Assert.False(idle.Idle);
        Assert.Equal("pending", IdleCgroup.ClassOf(idle.Mode));
        Assert.StartsWith("pending: pipelines.slice does not exist yet; systemd makes it with the first container, and its class is read from its files then (cgroup v1, the engine's cgroup driver systemd; systemd could not be asked: systemctl cannot be run: ", idle.Mode, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Slice), "the slice's cgroup is systemd's to make");
        Assert.True(idle.Reread().Pending);

        // systemd makes the slice with the first container; its unit installed on the host says CPUWeight=idle.
        Directory.CreateDirectory(Slice);
        Assert.True(CgroupFile.TryWrite(Path.Combine(Slice, "cpu.idle"), "1"));
        var known = idle.Reread();

        Assert.True(known.Idle);
        Assert.Equal("idle", IdleCgroup.ClassOf(known.Mode));
        Assert.StartsWith($"cpu.idle=1 on {Slice} (read from the slice's files: its unit says CPUWeight=idle; cgroup v1, the engine's cgroup driver systemd; systemd could not be asked: systemctl cannot be run", known.Mode, StringComparison.Ordinal);
        Assert.EndsWith("): the kernel's idle class, the owner always first", known.Mode, StringComparison.Ordinal);
    }

    [Fact]
    public void A_slice_at_normal_weight_is_off_and_names_the_fix_until_its_unit_gives_it_the_idle_class()
    {
        var idle = WithoutSystemctl(() => IdleCgroup.Prepare("pipelines", Socket, idle: true, () => CgroupDriver.Systemd, _machine));

        // The slice systemd made without our unit: the kernel's defaults, cpu.idle 0 and cpu.shares 1024.
        Directory.CreateDirectory(Slice);
        var off = idle.Reread();

        Assert.False(off.Idle);
        Assert.True(IdleCgroup.RunsWithoutClass(off.Mode));
        Assert.Equal("off", IdleCgroup.ClassOf(off.Mode));
        Assert.StartsWith($"off: pipelines.slice runs at normal weight ({Slice} has no cpu.idle=1; ", off.Mode, StringComparison.Ordinal);
        Assert.EndsWith("install deploy/systemd/pipelines.slice on the host: sudo install -m 644 deploy/systemd/pipelines.slice /etc/systemd/system/ && sudo systemctl daemon-reload", off.Mode, StringComparison.Ordinal);

        // A systemd before 252 gives CPUWeight=1 as the lowest cpu.shares; then the unit is installed and reloaded.
        Assert.True(CgroupFile.TryWrite(Path.Combine(Slice, "cpu.shares"), "2"));
        var lowest = off.Reread();
        Assert.Equal("lowest_weight", IdleCgroup.ClassOf(lowest.Mode));
        Assert.StartsWith($"cpu.shares=2 on {Slice} (read from the slice's files; ", lowest.Mode, StringComparison.Ordinal);

        Assert.True(CgroupFile.TryWrite(Path.Combine(Slice, "cpu.idle"), "1"));
        Assert.True(lowest.Reread().Idle);
    }

    [Fact]
    public void A_slice_of_another_name_is_read_where_it_is_and_its_fix_names_it()
    {
        var idle = WithoutSystemctl(() => IdleCgroup.Prepare("batch-work.slice", Socket, idle: true, () => CgroupDriver.Systemd, _machine));
        Directory.CreateDirectory(Path.Combine(_root, "batch.slice", "batch-work.slice"));

        var off = idle.Reread();

        Assert.EndsWith("install deploy/systemd/pipelines.slice on the host as /etc/systemd/system/batch-work.slice, then sudo systemctl daemon-reload", off.Mode, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_when_idle_worker_says_pending_then_warns_of_a_slice_at_normal_weight_naming_the_fix_then_says_the_idle_class()
    {
        var idle = WithoutSystemctl(() => IdleCgroup.Prepare("pipelines", Socket, idle: true, () => CgroupDriver.Systemd, _machine));
        var log = new ListLogger();
        var harvester = new Harvester(new HostLoadSampler("pipelines-tests-systemd", TimeProvider.System), HarvestPolicy.WhenIdle, new HarvestOptions(), 1, () => (idle = idle.Reread()).Mode, null, TimeProvider.System, log);

        await harvester.TickAsync(CancellationToken.None);
        Assert.StartsWith("pending: pipelines.slice does not exist yet", harvester.Status().IdleMode, StringComparison.Ordinal);
        Assert.Empty(log.Lines);

        // The first container made the slice, without our unit: the next admission reads it, and warns.
        Directory.CreateDirectory(Slice);
        using (await harvester.AdmitAsync(TimeSpan.Zero, CancellationToken.None))
        {
            var warning = Assert.Single(log.Lines);
            Assert.Equal(LogLevel.Warning, warning.Level);
            Assert.StartsWith("harvesting: policy when-idle, but our containers run without the idle class, so they compete with the machine's owner: off: pipelines.slice runs at normal weight", warning.Text, StringComparison.Ordinal);
            Assert.EndsWith("install deploy/systemd/pipelines.slice on the host: sudo install -m 644 deploy/systemd/pipelines.slice /etc/systemd/system/ && sudo systemctl daemon-reload", warning.Text, StringComparison.Ordinal);
            Assert.Equal(harvester.IdleMode, harvester.Status().IdleMode);
        }

        // The operator installs the unit and reloads systemd, which writes cpu.idle: the next round says so.
        Assert.True(CgroupFile.TryWrite(Path.Combine(Slice, "cpu.idle"), "1"));
        await harvester.TickAsync(CancellationToken.None);
        Assert.Equal(2, log.Lines.Count);
        Assert.Equal(LogLevel.Information, log.Lines[1].Level);
        Assert.StartsWith($"harvesting: containers cpu.idle=1 on {Slice}", log.Lines[1].Text, StringComparison.Ordinal);
        Assert.Equal("idle", IdleCgroup.ClassOf(harvester.Status().IdleMode));
    }

    public void Dispose()
    {
        // Deepest first: a cgroup goes only once it has no child.
        foreach (var dir in Directory.EnumerateDirectories(_root, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).Append(_root))
        {
            CgroupFile.TryRemove(dir);
        }

        _emptyPath.Dispose();
    }

    /// <summary>Runs <paramref name="prepare"/> with a PATH where no systemctl is, as in the worker's image.</summary>
    private T WithoutSystemctl<T>(Func<T> prepare)
    {
        var path = Environment.GetEnvironmentVariable("PATH");
        Environment.SetEnvironmentVariable("PATH", _emptyPath.Path);
        try
        {
            return prepare();
        }
        finally
        {
            Environment.SetEnvironmentVariable("PATH", path);
        }
    }

    /// <summary>What the harvester logs, kept to be read.</summary>
    private sealed class ListLogger : ILogger<Harvester>
    {
        public List<(LogLevel Level, string Text)> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Add((logLevel, formatter(state, exception)));
    }
}
