using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Containers;
using Pipelines.Model;
using Pipelines.Tests.Support;
using ContainerSpec = Pipelines.Containers.ContainerSpec;
using Mount = Pipelines.Containers.Mount;
using Resources = Pipelines.Model.Resources;

namespace Pipelines.Tests.Containers;

/// <summary>
/// The container runtime against the real Docker engine, with the busybox image that
/// scripts/build-images makes (pipelines-samples/pair-check:1 has busybox at /bin/busybox).
/// </summary>
[Integration]
public sealed class DockerRuntimeTests : IDisposable
{
    private const string Busybox = "pipelines-samples/pair-check:1";
    private readonly DockerEngine _engine = new(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint });
    private readonly TempFolder _temp = new();
    private readonly string _label = Guid.NewGuid().ToString("N");

    [Fact]
    public async Task Resolve_pins_a_tag_to_its_image_digest()
    {
        var id = await _engine.Runtime.ResolveImageAsync(Busybox, CancellationToken.None);
        Assert.StartsWith("sha256:", id, StringComparison.Ordinal);
        Assert.Equal(71, id.Length);
    }

    [Fact]
    public async Task Resolve_names_a_missing_image_in_one_clear_line()
    {
        var e = await Assert.ThrowsAsync<PipelinesException>(() => _engine.Runtime.ResolveImageAsync("pipelines-samples/no-such-image:9", CancellationToken.None));
        Assert.Contains("image 'pipelines-samples/no-such-image:9' is not on the Docker engine", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task A_container_runs_locked_down_as_a_non_root_user_without_network()
    {
        var script = string.Join("; ", [
            "echo uid=$(busybox id -u) gid=$(busybox id -g)",
            "echo ifaces=$(busybox ls /sys/class/net | busybox tr '\\n' ' ')",
            "busybox grep -E '^(CapEff|NoNewPrivs)' /proc/self/status",
            "(echo x > /root-write) 2>/dev/null && echo rootfs=writable || echo rootfs=readonly",
            "(echo x > /in/new) 2>/dev/null && echo in=writable || echo in=readonly",
            "echo y > /out/made && echo out=writable",
            "echo z > /tmp/scratch && echo tmp=writable",
            "echo pids=$(busybox cat /sys/fs/cgroup/pids.max 2>/dev/null || busybox cat /sys/fs/cgroup/pids/pids.max)",
            "echo to-stderr >&2",
        ]);
        var result = await RunAsync(["sh", "-c", script], new Resources(0.5, 64L * 1024 * 1024, TimeSpan.FromMinutes(1), 50));

        Assert.True(result.Succeeded, result.Log);
        Assert.Contains("uid=65534 gid=65534", result.Log, StringComparison.Ordinal);
        Assert.Matches(@"ifaces=lo\s*\n", result.Log);
        Assert.Matches(@"CapEff:\s+0000000000000000", result.Log);
        Assert.Matches(@"NoNewPrivs:\s+1", result.Log);
        Assert.Contains("rootfs=readonly", result.Log, StringComparison.Ordinal);
        Assert.Contains("in=readonly", result.Log, StringComparison.Ordinal);
        Assert.Contains("out=writable", result.Log, StringComparison.Ordinal);
        Assert.Contains("tmp=writable", result.Log, StringComparison.Ordinal);
        Assert.Contains("pids=50", result.Log, StringComparison.Ordinal);
        Assert.Contains("to-stderr", result.Log, StringComparison.Ordinal);
        Assert.Equal("y\n", await File.ReadAllTextAsync(_temp.Combine("out", "made")));
    }

    [Fact]
    public async Task A_non_zero_exit_is_reported_with_its_code_and_output()
    {
        var result = await RunAsync(["sh", "-c", "echo broken input >&2; exit 7"], Resources.Default);
        Assert.False(result.Succeeded);
        Assert.Equal(7, result.ExitCode);
        Assert.Equal("exited with code 7", result.Error);
        Assert.Contains("broken input", result.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_step_past_its_timeout_is_killed()
    {
        var result = await RunAsync(["sh", "-c", "echo started; busybox sleep 60"], Resources.Default with { Timeout = TimeSpan.FromSeconds(2) });
        Assert.True(result.TimedOut);
        Assert.False(result.Succeeded);
        Assert.True(result.Duration < TimeSpan.FromSeconds(30), result.Duration.ToString());
        Assert.Contains("started", result.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_step_over_its_memory_limit_is_killed_for_memory()
    {
        // awk doubles a string until the cgroup's limit kills it.
        var result = await RunAsync(["awk", "BEGIN { s = \"xxxxxxxxxxxxxxxx\"; while (1) s = s s }"], Resources.Default with { MemoryBytes = 16L * 1024 * 1024 });
        Assert.False(result.Succeeded);
        Assert.True(result.OomKilled, $"exit {result.ExitCode}: {result.Log}");
        Assert.Equal("was killed for exceeding its memory limit", result.Error);
    }

    [Fact]
    public async Task A_step_that_prints_without_end_keeps_the_engines_json_log_under_its_cap()
    {
        // 24 MB to stdout, then a mark in /out, then a wait: the engine's json log of the
        // container is measured on the host while the container still runs.
        using var cancel = new CancellationTokenSource();
        var run = RunAsync(["sh", "-c", "yes 0123456789abcdef | head -c 24000000; echo printed > /out/printed; sleep 120"], Resources.Default, cancel.Token);
        var mark = _temp.Combine("out", "printed");
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (!File.Exists(mark) && DateTime.UtcNow < deadline && !run.IsCompleted)
        {
            await Task.Delay(100);
        }

        Assert.True(File.Exists(mark), "the container did not finish printing");
        using var client = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        var container = (await client.Containers.ListContainersAsync(new ContainersListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { ["org.pipelines.test=" + _label] = true } },
        })).Single();
        var inspect = await client.Containers.InspectContainerAsync(container.ID);
        Assert.Equal("json-file", inspect.HostConfig?.LogConfig?.Type);
        var logs = Directory.GetFiles(Path.GetDirectoryName(inspect.LogPath)!, Path.GetFileName(inspect.LogPath) + "*");
        Assert.InRange(logs.Sum(l => new FileInfo(l).Length), 1, 2 * (8L * 1024 * 1024 + 64 * 1024));

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task The_engine_keeps_the_first_and_last_half_MiB_of_a_steps_output_and_says_it_cut()
    {
        var result = await RunAsync(["sh", "-c", "echo FIRST; yes 0123456789abcdef | head -c 3000000; echo; echo LAST"], Resources.Default);
        Assert.True(result.Succeeded, result.Error);
        Assert.StartsWith("FIRST\n", result.Log, StringComparison.Ordinal);
        Assert.EndsWith("\nLAST\n", result.Log, StringComparison.Ordinal);
        Assert.Contains("[pipelines: log cut: the first and last 524288 of 3000012 bytes are kept]", result.Log, StringComparison.Ordinal);
        Assert.InRange(System.Text.Encoding.UTF8.GetByteCount(result.Log), 1024 * 1024, 1024 * 1024 + 200);
    }

    [Fact]
    public async Task Containers_are_removed_after_they_end()
    {
        await RunAsync(["sh", "-c", "exit 0"], Resources.Default);
        await RunAsync(["sh", "-c", "exit 3"], Resources.Default);

        using var client = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        var left = await client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { ["org.pipelines.test=" + _label] = true } },
        });
        Assert.Empty(left);
    }

    [Fact]
    public async Task A_run_cancelled_at_any_moment_of_its_creation_leaves_no_container()
    {
        // An engine makes the container even when the client gives the create request up half
        // way: a cancel (a user's, a vacate, a shutdown) at that moment left a container that no
        // one knew the id of. The cancel is swept over the first moments of the run.
        var image = await _engine.Runtime.ResolveImageAsync(Busybox, CancellationToken.None);
        var spec = new ContainerSpec(image, ["busybox", "sleep", "60"], new Dictionary<string, string>(), [], Resources.Default, new Dictionary<string, string> { ["org.pipelines.test"] = _label });
        foreach (var ms in new[] { 0, 1, 2, 3, 5, 8, 12, 17, 23, 30, 40, 55, 75, 100, 150 })
        {
            using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(ms));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _engine.Runtime.RunAsync(spec, cancel.Token));
        }

        using var client = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        IList<ContainerListResponse> left;
        while ((left = await client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { ["org.pipelines.test=" + _label] = true } },
        })).Count > 0 && clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(100);
        }

        Assert.True(left.Count == 0, $"{left.Count} container(s) left: {string.Join("; ", left.Select(c => $"{c.ID[..12]} {c.State} {c.Status}"))}");
    }

    [Fact]
    public async Task A_containers_cpu_time_and_peak_memory_are_read_from_its_cgroup_after_it_is_gone()
    {
        var result = await RunAsync(["sh", "-c", BurnScript], Resources.Default with { Cpus = 1, MemoryBytes = 256L * 1024 * 1024 });

        Assert.True(result.Succeeded, result.Log);
        var burned = Burned(result.Log);
        var used = result.Resources;
        Assert.NotNull(used.CpuSeconds);
        Assert.InRange(used.CpuSeconds.Value, burned * 0.8, burned + 2);
        Assert.NotNull(used.PeakMemoryBytes);
        Assert.InRange(used.PeakMemoryBytes.Value, FillBytes, 256L * 1024 * 1024);
        Assert.NotNull(used.WallSeconds);
        Assert.Equal(result.Duration.TotalSeconds, used.WallSeconds.Value, 6);

        // A 1-cpu limit: the wall time is at least the CPU time (less one scheduler period of slack).
        Assert.True(used.WallSeconds >= used.CpuSeconds - 0.1, $"wall {used.WallSeconds} s, cpu {used.CpuSeconds} s");
        AssertDiskBytesOrANote(result);

        // Nothing of the attempt's cgroup is left behind once it has been read.
        Assert.DoesNotContain(result.ResourceNotes, n => n.Contains("could not be removed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_a_cgroup_parent_nothing_is_measured_and_the_result_says_why_instead_of_zeros()
    {
        using var engine = new DockerEngine(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint, CgroupParent = "" });
        var image = await engine.Runtime.ResolveImageAsync(Busybox, CancellationToken.None);
        var result = await engine.Runtime.RunAsync(new ContainerSpec(image, ["sh", "-c", "exit 0"], new Dictionary<string, string>(), [], Resources.Default, new Dictionary<string, string> { ["org.pipelines.test"] = _label }), CancellationToken.None);

        Assert.True(result.Succeeded, result.Log);
        Assert.Equal(new ResourceUse(null, null, null, null, result.Duration.TotalSeconds), result.Resources);
        Assert.Equal(["CPU time, peak memory and bytes read and written not measured: Docker:CgroupParent is empty, so containers have no cgroup of ours to read"], result.ResourceNotes);
    }

    /// <summary>
    /// Burns at least half a second of CPU in the shell itself, says how much from /proc, fills
    /// <see cref="FillBytes"/> of the /tmp tmpfs (charged to the container's memory) and writes 300 kB to /out.
    /// </summary>
    internal const string BurnScript =
        "t=0; while [ $t -lt 50 ]; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; read -r s < /proc/$$/stat; set -- $s; shift 13; t=$(($1+$2)); done; echo burned=$t; "
        + "busybox dd if=/dev/zero of=/tmp/fill bs=1048576 count=20 2>/dev/null && busybox head -c 300000 /dev/zero > /out/written && echo filled";

    internal const long FillBytes = 20L * 1024 * 1024;

    /// <summary>The CPU seconds the burn script's shell used, as it printed them (clock ticks of 1/100 s).</summary>
    internal static double Burned(string log)
    {
        var line = log.Split('\n').Single(l => l.StartsWith("burned=", StringComparison.Ordinal));
        Assert.Contains("filled", log, StringComparison.Ordinal);
        return int.Parse(line["burned=".Length..], System.Globalization.CultureInfo.InvariantCulture) / 100.0;
    }

    /// <summary>
    /// Block I/O as the cgroup counts it is written only where the kernel keeps it: cgroup v1 on a
    /// recent kernel counts none without a blk-throttle rule, and buffered writes are written back
    /// outside the container's cgroup on v1. So: a number, or null with the note that says why.
    /// </summary>
    internal static void AssertDiskBytesOrANote(ContainerResult result)
    {
        if (result.Resources.WrittenBytes is null || result.Resources.ReadBytes is null)
        {
            Assert.Null(result.Resources.WrittenBytes);
            Assert.Null(result.Resources.ReadBytes);
            Assert.Contains(result.ResourceNotes, n => n.StartsWith("bytes read and written not measured: ", StringComparison.Ordinal));
        }
        else
        {
            Assert.True(result.Resources.WrittenBytes >= 0 && result.Resources.ReadBytes >= 0);
        }
    }

    private async Task<ContainerResult> RunAsync(IReadOnlyList<string> command, Resources resources, CancellationToken cancellationToken = default)
    {
        var image = await _engine.Runtime.ResolveImageAsync(Busybox, CancellationToken.None);
        var inDir = _temp.Combine("in");
        var outDir = _temp.Combine("out");
        Directory.CreateDirectory(inDir);
        Directory.CreateDirectory(outDir);
        File.SetUnixFileMode(outDir, (UnixFileMode)0b111_111_111);
        return await _engine.Runtime.RunAsync(
            new ContainerSpec(image, command, new Dictionary<string, string>(), [new Mount(inDir, "/in", true), new Mount(outDir, "/out", false)], resources, new Dictionary<string, string> { ["org.pipelines.test"] = _label }),
            cancellationToken);
    }

    public void Dispose()
    {
        _engine.Dispose();
        _temp.Dispose();
    }
}
