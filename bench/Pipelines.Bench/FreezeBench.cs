using System.Diagnostics;
using System.Globalization;
using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Containers;
using Pipelines.Containers.Cgroups;

namespace Pipelines.Bench;

/// <summary>
/// bench/freeze (issue 20, item 7): what suspending our containers costs a busy owner. Busy-loop
/// containers run under a parent in the kernel's idle class, beside an owner (one thread per
/// core doing fixed integer work in this process, at the normal weight). Each round measures
/// the owner's operations per second with the containers running, then while they are frozen
/// by `docker pause` (runc's freeze) and while they are frozen through their freezer files (as
/// the engine does: <see cref="ICgroupHierarchy.Freeze"/>), each over the same window from the
/// call, and how long the call took and whether it failed.
/// </summary>
internal static class FreezeBench
{
    private const string Busybox = "pipelines-samples/pair-check:1";
    private const string Parent = "pipelines-bench-freeze";
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(1);
    private static long _ops;

    public static async Task<int> RunAsync(int rounds, int containers)
    {
        using var client = new DockerClientBuilder().WithEndpoint(new Uri(Environment.GetEnvironmentVariable("DOCKER_HOST") ?? "unix:///var/run/docker.sock")).Build();
        var machine = CgroupMounts.Machine;
        var driver = CgroupDriver.Ask(client, machine, TimeSpan.FromSeconds(30));
        var idle = IdleCgroup.Prepare(Parent, "unix:///var/run/docker.sock", idle: true, () => driver, machine);
        Console.Error.WriteLine($"freeze: {containers} busy containers, {idle.Mode}; owner {Environment.ProcessorCount} thread(s); {rounds} round(s)");
        if (!idle.Idle)
        {
            Console.Error.WriteLine("freeze: the parent is not in the idle class: the figures would not be those of a harvesting worker");
        }

        using var stop = new CancellationTokenSource();
        var ids = new List<string>();
        var rows = new List<(string Method, double Seconds, bool Failed, double OwnerShare)>();
        // The containers start at the normal weight and go to the idle class once they run: runc's
        // start of a container in the idle class waits for CPU that a busy machine does not leave.
        var cpuIdle = Path.Combine(machine.CpuFolder(idle.Path) ?? "", "cpu.idle");
        CgroupFile.TryWrite(cpuIdle, "0");
        try
        {
            for (var i = 0; i < containers; i++)
            {
                var id = (await client.Containers.CreateContainerAsync(new CreateContainerParameters
                {
                    Image = Busybox,
                    Entrypoint = ["sh"],
                    Cmd = ["-c", "while :; do :; done"],
                    User = "65534:65534",
                    Labels = new Dictionary<string, string> { ["org.pipelines.bench"] = "freeze" },
                    NetworkDisabled = true,
                    HostConfig = new HostConfig { NetworkMode = "none", CgroupParent = idle.EngineParent!, Memory = 32L * 1024 * 1024, CPUShares = 256 },
                })).ID;
                ids.Add(id);
                await client.Containers.StartContainerAsync(id, new ContainerStartParameters());
            }

            CgroupFile.TryWrite(cpuIdle, idle.Idle ? "1" : "0");
            foreach (var thread in Enumerable.Range(0, Environment.ProcessorCount).Select(i => new Thread(() => Work(i, stop.Token)) { IsBackground = true }))
            {
                thread.Start();
            }

            await Task.Delay(TimeSpan.FromSeconds(2));
            for (var round = 1; round <= rounds; round++)
            {
                var baseline = await RateAsync(() => Task.CompletedTask);

                var pauseFailed = false;
                var pause = Stopwatch.StartNew();
                var paused = await RateAsync(async () =>
                {
                    foreach (var id in ids)
                    {
                        try
                        {
                            await client.Containers.PauseContainerAsync(id);
                        }
                        catch (DockerApiException)
                        {
                            pauseFailed = true;
                        }
                    }

                    pause.Stop();
                });
                rows.Add(("docker pause", pause.Elapsed.TotalSeconds, pauseFailed, paused / baseline));
                foreach (var id in ids)
                {
                    try
                    {
                        await client.Containers.UnpauseContainerAsync(id);
                    }
                    catch (DockerApiException)
                    {
                        // Its pause had failed: it runs.
                    }
                }

                await Task.Delay(Window);
                var files = Stopwatch.StartNew();
                var fileFailed = false;
                var frozen = await RateAsync(() =>
                {
                    foreach (var id in ids)
                    {
                        fileFailed |= !machine.Freeze(idle.ContainerCgroup(id), frozen: true);
                    }

                    files.Stop();
                    return Task.CompletedTask;
                });
                rows.Add(("freezer files", files.Elapsed.TotalSeconds, fileFailed, frozen / baseline));
                ids.ForEach(id => machine.Freeze(idle.ContainerCgroup(id), frozen: false));
                await Task.Delay(Window);
                Console.Error.WriteLine($"freeze: round {round}: owner {baseline:0} ops/s running, {paused / baseline:P0} of it during docker pause ({pause.Elapsed.TotalSeconds:0.000} s{(pauseFailed ? ", failed" : "")}), {frozen / baseline:P0} through the files ({files.Elapsed.TotalMilliseconds:0.0} ms{(fileFailed ? ", failed" : "")})");
            }
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var id in ids)
            {
                machine.Freeze(idle.ContainerCgroup(id), frozen: false);
                await client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true });
            }

            foreach (var folder in machine.Folders(idle.Path))
            {
                CgroupFile.TryRemove(folder);
            }
        }

        Console.WriteLine($"| method | rounds | call (median) | failed | owner's throughput during it (median, of running) |");
        Console.WriteLine("| --- | --- | --- | --- | --- |");
        foreach (var g in rows.GroupBy(r => r.Method))
        {
            Console.WriteLine(string.Create(Inv, $"| {g.Key} | {g.Count()} | {Median(g.Select(r => r.Seconds)) * 1000:0.0} ms | {g.Count(r => r.Failed)} | {Median(g.Select(r => r.OwnerShare)):P1} |"));
        }

        return 0;
    }

    /// <summary>The owner's operations per second over <see cref="Window"/> from the start of <paramref name="act"/> (or longer, when it takes longer).</summary>
    private static async Task<double> RateAsync(Func<Task> act)
    {
        var clock = Stopwatch.StartNew();
        var before = Interlocked.Read(ref _ops);
        await act();
        var left = Window - clock.Elapsed;
        if (left > TimeSpan.Zero)
        {
            await Task.Delay(left);
        }

        return (Interlocked.Read(ref _ops) - before) / clock.Elapsed.TotalSeconds;
    }

    /// <summary>One owner thread: fixed integer work (xorshift rounds), counted per thousand rounds.</summary>
    private static void Work(int seed, CancellationToken stop)
    {
        var x = (ulong)(seed + 1) * 0x9E3779B97F4A7C15UL;
        while (!stop.IsCancellationRequested)
        {
            for (var i = 0; i < 1000; i++)
            {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }

            Interlocked.Increment(ref _ops);
        }

        GC.KeepAlive(x);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? 0 : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
