using System.Diagnostics;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Containers;
using Pipelines.Containers.Cgroups;
using Pipelines.Harvest;
using Pipelines.Model;
using Pipelines.Tests.Support;
using ContainerSpec = Pipelines.Containers.ContainerSpec;
using Mount = Pipelines.Containers.Mount;
using Resources = Pipelines.Model.Resources;

namespace Pipelines.Tests.Harvest;

[CollectionDefinition("harvest", DisableParallelization = true)]
public sealed class HarvestCollection;

/// <summary>
/// Harvesting against the real kernel and Docker engine: a synthetic owner (busy-loop shells)
/// and real containers under a cgroup parent of the tests'. Alone in their collection: the
/// owner's load is the whole machine's.
/// </summary>
[Collection("harvest")]
[Integration]
public sealed class HarvestTests : IDisposable
{
    private const string Busybox = "pipelines-samples/pair-check:1";
    private const string Parent = "pipelines-tests";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly DockerEngine _runtime = new(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint, CgroupParent = Parent, IdleClass = true });
    private readonly DockerClient _docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
    private readonly OwnerBurner _owner = new();
    private readonly TempFolder _temp = new();
    private readonly string _label = Guid.NewGuid().ToString("N");

    [Fact]
    public async Task The_sampler_sees_a_busy_owner_and_costs_under_one_percent_of_a_core()
    {
        var host = new HostLoadSampler(Parent, TimeProvider.System);
        var scoped = new HostLoadSampler(Parent, TimeProvider.System, OwnerBurner.Cgroup);
        _owner.Start();
        host.Sample();
        scoped.Sample();

        // Real time is the scenario in this class's windows (2 s, 1 s, 0.5 s, 1.5 s): the sampler
        // and the cgroups' counters are measured over them; no event stands for CPU used.
        await Task.Delay(TimeSpan.FromSeconds(2));
        var busy = host.Sample();
        var owner = scoped.Sample();
        _owner.Stop();
        scoped.Sample();
        await Task.Delay(TimeSpan.FromSeconds(1));
        var quiet = scoped.Sample();

        Assert.True(busy.OwnerFraction > 0.8, $"owner at {busy.OwnerFraction:P0} of the machine with a busy loop on every core");
        Assert.True(owner.OwnerFraction > 0.6, $"the owner's cgroup at {owner.OwnerFraction:P0} with a busy loop on every core");
        Assert.True(quiet.OwnerFraction < 0.05, $"the owner's cgroup at {quiet.OwnerFraction:P0} with its loops stopped");
        var sampler = host;
        Assert.True(busy.MemoryTotal > 0 && busy.MemoryAvailable > 0 && busy.MemoryAvailable <= busy.MemoryTotal);

        // Cost: at one sample a second, under 10 ms of CPU per sample is under 1% of a core.
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        const int samples = 500;
        for (var i = 0; i < samples; i++)
        {
            sampler.Sample();
        }

        var perSample = (Process.GetCurrentProcess().TotalProcessorTime - cpu) / samples;
        Assert.True(perSample < TimeSpan.FromMilliseconds(10), $"a sample costs {perSample.TotalMilliseconds:0.000} ms of CPU");
    }

    [Fact]
    public async Task Containers_run_in_the_idle_class_and_their_cpu_is_ours_not_the_owners()
    {
        Assert.StartsWith("cpu.idle=1", _runtime.Idle.Mode, StringComparison.Ordinal);
        Assert.Equal("1", CgroupFile.Read(Path.Combine(_runtime.Idle.Hierarchy.CpuFolder(_runtime.Idle.Path)!, "cpu.idle")));

        var sampler = new HostLoadSampler(Parent, TimeProvider.System);
        using var stop = new CancellationTokenSource();
        var run = RunAsync(["sh", "-c", "while :; do :; done"], stop.Token);
        var id = await RunningContainerAsync();

        // The container's own cgroup is under our parent (in its attempt's cgroup there), for the kernel, not just for Docker.
        var pid = (await _docker.Containers.InspectContainerAsync(id)).State!.Pid;
        var cgroups = await File.ReadAllTextAsync($"/proc/{pid}/cgroup");
        Assert.Matches($@":cpu:/{Parent}/attempt-[0-9a-f]{{32}}/{id}\n", cgroups.Replace("cpu,cpuacct", "cpu", StringComparison.Ordinal));
        var cgroup = _runtime.Idle.FindContainer(id);
        Assert.Equal(_runtime.Freezer.CgroupOf(id), cgroup);

        sampler.Sample();
        var window = Stopwatch.StartNew();
        var before = _runtime.Idle.Hierarchy.CpuNanos(cgroup!)!.Value;
        await Task.Delay(TimeSpan.FromSeconds(2));
        var after = _runtime.Idle.Hierarchy.CpuNanos(cgroup!)!.Value;
        var sample = sampler.Sample();
        window.Stop();
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);

        // What the container's own cgroup counted over the window is ours, and not the owner's
        // (in the idle class it gets little on a machine that others keep busy, but never nothing).
        var used = (after - before) / 1e9 / window.Elapsed.TotalSeconds;
        Assert.True(used > 0, "the container ran");
        Assert.InRange(sample.OursCpu, used * 0.8 - 0.02, used * 1.2 + 0.02);
        Assert.Equal(Math.Max(0, sample.HostCpu - sample.OursCpu), sample.OwnerCpu, 6);
    }

    [Fact]
    public async Task A_task_is_admitted_only_after_the_owner_has_been_quiet_for_StartAfter()
    {
        var harvester = Harvester(new HarvestOptions { StartBelow = 0.6, StartAfter = TimeSpan.FromSeconds(3) });
        using var ticking = new CancellationTokenSource();
        var ticks = TickAsync(harvester, ticking.Token);

        _owner.Start();
        await WaitAsync(() => harvester.Status().Latest?.OwnerFraction > 0.8, "the owner's load to show");
        Assert.Null(await harvester.AdmitAsync(TimeSpan.FromSeconds(3), CancellationToken.None));
        Assert.Contains("above Harvest:StartBelow", harvester.Why(), StringComparison.Ordinal);

        _owner.Stop();
        var quiet = Stopwatch.StartNew();
        using var slot = await harvester.AdmitAsync(Patience, CancellationToken.None);
        Assert.NotNull(slot);
        Assert.True(quiet.Elapsed >= TimeSpan.FromSeconds(2.5), $"admitted {quiet.Elapsed.TotalSeconds:0.0} s after the owner stopped");
        Assert.Equal(1, harvester.Status().Running);

        await ticking.CancelAsync();
        await ticks;
    }

    [Fact]
    public async Task Never_and_a_drain_admit_nothing_while_a_running_task_keeps_its_slot()
    {
        var never = Harvester(new HarvestOptions(), HarvestPolicy.Never);
        await never.TickAsync(CancellationToken.None);
        Assert.Null(await never.AdmitAsync(TimeSpan.FromMilliseconds(200), CancellationToken.None));
        Assert.False(await never.RoomAsync(TimeSpan.FromMilliseconds(200), CancellationToken.None));

        var always = Harvester(new HarvestOptions(), HarvestPolicy.Always);
        await always.TickAsync(CancellationToken.None);
        // Room is looked at without taking any (4 slots here): nothing is counted as running.
        Assert.True(await always.RoomAsync(TimeSpan.Zero, CancellationToken.None));
        Assert.Equal(0, always.Status().Running);
        var running = await always.AdmitAsync(TimeSpan.Zero, CancellationToken.None);
        Assert.NotNull(running);
        always.Drain();
        Assert.False(await always.RoomAsync(TimeSpan.FromMilliseconds(200), CancellationToken.None));
        Assert.Null(await always.AdmitAsync(TimeSpan.FromMilliseconds(200), CancellationToken.None));
        Assert.Equal("this worker is draining", always.Why());
        Assert.Equal(1, always.Status().Running);
        running.Dispose();
        Assert.Equal(0, always.Status().Running);
    }

    [Fact]
    public async Task A_drain_asked_where_drains_are_asked_is_seen_by_the_next_admission_and_an_unreadable_one_stops_nothing()
    {
        var asked = false;
        var looks = 0;
        var always = Harvester(new HarvestOptions(), HarvestPolicy.Always, () =>
        {
            looks++;
            return asked;
        });
        await always.TickAsync(CancellationToken.None);
        using var first = await always.AdmitAsync(TimeSpan.Zero, CancellationToken.None);
        Assert.NotNull(first);
        Assert.Equal(1, looks);

        // Asked now: the very next admission sees it, whatever the board's round.
        asked = true;
        Assert.Null(await always.AdmitAsync(TimeSpan.FromMilliseconds(200), CancellationToken.None));
        Assert.True(always.Draining);
        Assert.True(always.Drained.IsCompleted);
        Assert.Equal("this worker is draining", always.Why());
        Assert.Equal(1, always.Status().Running);

        // Where it cannot be read (the storage out of reach), admission goes on.
        var unreadable = Harvester(new HarvestOptions(), HarvestPolicy.Always, () => throw new InvalidOperationException("storage out of reach"));
        await unreadable.TickAsync(CancellationToken.None);
        using var admitted = await unreadable.AdmitAsync(TimeSpan.Zero, CancellationToken.None);
        Assert.NotNull(admitted);
        Assert.False(unreadable.Draining);
    }

    [Fact]
    public async Task Function_requests_share_one_look_at_the_drain_a_second_while_every_task_admission_looks()
    {
        var asked = false;
        var looks = 0;
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var always = Harvester(new HarvestOptions(), HarvestPolicy.Always, () =>
        {
            looks++;
            return asked;
        }, time);
        await always.TickAsync(CancellationToken.None);
        using var vacate = new CancellationTokenSource();
        using (await always.AdmitRequestAsync(vacate, () => 0, TimeSpan.Zero, CancellationToken.None))
        using (await always.AdmitRequestAsync(vacate, () => 0, TimeSpan.Zero, CancellationToken.None))
        {
            Assert.Equal(1, looks);
        }

        // A task's admission reads the request every time.
        using (await always.AdmitAsync(TimeSpan.Zero, CancellationToken.None))
        {
            Assert.Equal(2, looks);
        }

        // A drain asked now stops function requests from the next look, at most a second later.
        asked = true;
        using var beforeTheLook = await always.AdmitRequestAsync(vacate, () => 0, TimeSpan.Zero, CancellationToken.None);
        Assert.NotNull(beforeTheLook);
        time.Advance(Pipelines.Harvest.Harvester.RequestDrainLook);
        Assert.Null(await always.AdmitRequestAsync(vacate, () => 0, TimeSpan.Zero, CancellationToken.None));
        Assert.Equal(3, looks);
        Assert.True(always.Draining);
    }

    [Fact]
    public async Task A_busy_owner_suspends_our_container_in_the_freezer_and_a_quiet_one_resumes_it()
    {
        var harvester = Harvester(new HarvestOptions { StartBelow = 0.3, StartAfter = TimeSpan.Zero, SuspendAbove = 0.5, SuspendAfter = TimeSpan.FromSeconds(1), ResumeAfter = TimeSpan.FromSeconds(2) });
        using var ticking = new CancellationTokenSource();
        var ticks = TickAsync(harvester, ticking.Token);
        using var slot = await harvester.AdmitAsync(Patience, CancellationToken.None);
        Assert.NotNull(slot);

        Directory.CreateDirectory(_temp.Combine("out"));
        using var stop = new CancellationTokenSource();
        var run = RunAsync(["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /out/n.tmp; busybox mv /out/n.tmp /out/n; busybox usleep 100000; done"], stop.Token);
        var id = await RunningContainerAsync();
        await WaitAsync(() => Progress() > 0, "the container to make progress");
        Assert.Equal(FreezerState.Thawed, Freezer.StateOf(_runtime.Idle, id));

        _owner.Start();
        // Freezing until every task of the container has reached the freezer (a task of the idle
        // class on a busy machine may take a while to run at all), then frozen.
        await WaitAsync(() => Freezer.Holds(Freezer.StateOf(_runtime.Idle, id)), () => $"the freezer to hold the container (owner at {harvester.Status().Latest?.OwnerFraction:P0}, ticks {ticks.Status})");
        Assert.Equal(1, harvester.Status().Suspended);
        await Task.Delay(TimeSpan.FromSeconds(0.5));
        var frozenAt = Progress();
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.Equal(frozenAt, Progress());

        _owner.Stop();
        await WaitAsync(() => Freezer.StateOf(_runtime.Idle, id) == FreezerState.Thawed, "the container to thaw");
        await WaitAsync(() => Progress() > frozenAt + 3, "the container to make progress again");
        Assert.Equal(0, harvester.Status().Suspended);

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        await ticking.CancelAsync();
        await ticks;
    }

    [Fact]
    public async Task Time_held_suspended_does_not_count_against_a_steps_timeout()
    {
        // Six seconds of sleep against a timeout of twelve, held frozen until more than twelve
        // have passed on the wall clock. At normal weight (not the idle class), so that on a
        // machine that others keep busy the container runs at once when thawed.
        using var runtime = new DockerEngine(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint, CgroupParent = Parent, IdleClass = false });
        var clock = Stopwatch.StartNew();
        var run = RunAsync(["busybox", "sleep", "6"], CancellationToken.None, TimeSpan.FromSeconds(12), runtime);
        var id = await RunningContainerAsync();
        await runtime.Suspender.SuspendAllAsync(CancellationToken.None);
        await WaitAsync(() => Freezer.Holds(Freezer.StateOf(runtime.Idle, id)), () => $"the freezer to hold the container ({Freezer.StateOf(runtime.Idle, id)}, {clock.Elapsed.TotalSeconds:0.0} s since the start, the step {run.Status})");
        await WaitAsync(() => clock.Elapsed > TimeSpan.FromSeconds(14), "the timeout to pass in wall-clock time");
        Assert.Equal(1, await runtime.Suspender.ResumeAllAsync(CancellationToken.None));

        var result = await run.WaitAsync(Patience);
        Assert.False(result.TimedOut, $"timed out after {result.Duration.TotalSeconds:0.0} s: {result.Log}");
        Assert.Equal(0, result.ExitCode);
        Assert.True(result.Duration > TimeSpan.FromSeconds(12), $"ran {result.Duration.TotalSeconds:0.0} s");
    }

    public void Dispose()
    {
        _owner.Dispose();
        _runtime.Dispose();
        _docker.Dispose();
        _temp.Dispose();
    }

    private Harvester Harvester(HarvestOptions options, HarvestPolicy policy = HarvestPolicy.WhenIdle, Func<bool>? drainRequested = null, TimeProvider? time = null) =>
        new(new HostLoadSampler(Parent, TimeProvider.System, OwnerBurner.Cgroup), policy, options with { SampleInterval = TimeSpan.FromMilliseconds(250) }, 4, () => _runtime.RereadIdleClass().Mode, _runtime.Suspender, time ?? TimeProvider.System, NullLogger<Harvester>.Instance)
        {
            DrainRequested = drainRequested,
        };

    private static async Task TickAsync(Harvester harvester, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await harvester.TickAsync(CancellationToken.None);
            try
            {
                await Task.Delay(250, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private long Progress() => long.TryParse(CgroupFile.Read(_temp.Combine("out", "n")), out var n) ? n : 0;

    private Task<ContainerResult> RunAsync(IReadOnlyList<string> command, CancellationToken ct, TimeSpan? timeout = null, DockerEngine? runtime = null)
    {
        Directory.CreateDirectory(_temp.Combine("out"));
        File.SetUnixFileMode(_temp.Combine("out"), (UnixFileMode)0b111_111_111);
        var spec = new ContainerSpec(
            Busybox,
            command,
            new Dictionary<string, string>(),
            [new Mount(_temp.Combine("out"), ContainerLayout.Out, ReadOnly: false)],
            new Resources(1, 64L * 1024 * 1024, timeout ?? TimeSpan.FromMinutes(5), 50),
            new Dictionary<string, string> { ["org.pipelines.test"] = _label });
        return Task.Run(() => (runtime ?? _runtime).Runtime.RunAsync(spec, ct), CancellationToken.None);
    }

    private async Task<string> RunningContainerAsync()
    {
        string? id = null;
        await WaitAsync(
            async () =>
            {
                var list = await _docker.Containers.ListContainersAsync(new ContainersListParameters
                {
                    Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"org.pipelines.test={_label}"] = true } },
                });
                id = list.FirstOrDefault(c => c.State == "running")?.ID;
                return id is not null;
            },
            "the container to run");
        return id!;
    }

    private static Task WaitAsync(Func<bool> condition, string what) => WaitAsync(() => Task.FromResult(condition()), () => what);

    private static Task WaitAsync(Func<bool> condition, Func<string> what) => WaitAsync(() => Task.FromResult(condition()), what);

    private static Task WaitAsync(Func<Task<bool>> condition, string what) => WaitAsync(condition, () => what);

    private static async Task WaitAsync(Func<Task<bool>> condition, Func<string> what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < Patience, $"waited {Patience.TotalSeconds:0} s for {what()}");
            await Task.Delay(100);
        }
    }
}
