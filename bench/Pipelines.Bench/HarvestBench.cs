using System.Diagnostics;
using System.Globalization;
using System.Text;
using Pipelines.Containers.Cgroups;

namespace Pipelines.Bench;

/// <summary>
/// bench/harvest (issue 12): an owner with a measurable throughput, busy in bursts, beside a long
/// pipeline run, in three phases of one invocation: the owner alone; the owner with a pipeline at
/// fixed concurrency and harvesting off (Harvest:Policy always: no idle class, never suspended);
/// the owner with harvesting on (when-idle: the idle class, admission, suspend and resume).
/// Samples once a second: the owner's operations, the owner's and the pipeline's CPU (their
/// cgroups' cpuacct.usage), the host's (/proc/stat) and the pipeline's completed files; writes
/// them as CSV, a PNG plot and a Markdown report.
/// </summary>
internal static class HarvestBench
{
    /// <summary>The owner's cgroup: a cgroup of its own at the default weight, as an ordinary service's.</summary>
    private const string OwnerCgroup = "pipelines-bench-owner";

    /// <summary>The pipeline's containers run under this parent (and "-always" under policy always), apart from other users of the engine.</summary>
    private const string PipelineParent = "pipelines-bench";

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The pipeline's two parents' cgroups, as the engine's cgroup driver names them (/pipelines-bench and /pipelines-bench-always under cgroupfs).</summary>
    private static readonly Lazy<string[]> PipelineCgroups = new(() =>
    {
        using var client = new Docker.DotNet.DockerClientBuilder().WithEndpoint(new Uri(Environment.GetEnvironmentVariable("DOCKER_HOST") ?? "unix:///var/run/docker.sock")).Build();
        var driver = CgroupDriver.Ask(client, CgroupMounts.Machine, TimeSpan.FromSeconds(30));
        return [driver.PathOf(driver.ParentName(PipelineParent, idle: true)), driver.PathOf(driver.ParentName(PipelineParent, idle: false))];
    });

    // Where the owner's threads leave their last value, so that their work cannot be optimised away.
    private static long _sink;

    /// <summary>One second's sample; CPU in core-seconds used since the previous sample, which is <see cref="Wall"/> seconds back.</summary>
    private sealed record Sample(double T, string Phase, bool Measured, bool OwnerBusy, long OwnerOps, double Wall, double OwnerCpu, double PipelineCpu, double HostCpu, int Completed)
    {
        public double PipelineRate => Wall > 0 ? PipelineCpu / Wall : 0;
    }

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 7)
        {
            Console.Error.WriteLine("usage: harvest BUSY_S IDLE_S CYCLES PNG WORK_DIR PIPELINES_CLI DATA_DIR [WORKERS] [TASK_LOOPS]");
            return 2;
        }

        var busy = int.Parse(args[0], Inv);
        var idle = int.Parse(args[1], Inv);
        var cycles = int.Parse(args[2], Inv);
        var png = Path.GetFullPath(args[3]);
        var work = Path.GetFullPath(args[4]);
        var cli = args[5];
        var data = Path.GetFullPath(args[6]);
        var workers = args.Length > 7 ? int.Parse(args[7], Inv) : Environment.ProcessorCount;
        var loops = args.Length > 8 ? int.Parse(args[8], Inv) : 200000;
        if (busy < 2 || idle < 2 || cycles < 1)
        {
            Console.Error.WriteLine("harvest: BUSY_S and IDLE_S must be at least 2 s, CYCLES at least 1");
            return 2;
        }

        Directory.CreateDirectory(work);
        var cycle = busy + idle;
        var phase = cycle * cycles;
        var workflow = Path.Combine(work, "burn.yaml");
        // reuse: true (the default here, BENCH_REUSE=false for a container per task): the tasks are
        // requests to warm containers, as the batch fast path runs small files (docs/benchmarks.md).
        var reuse = Environment.GetEnvironmentVariable("BENCH_REUSE") is not ("false" or "0");
        await File.WriteAllTextAsync(workflow, Workflow(loops, reuse));

        Console.Error.WriteLine($"harvest: owner {busy} s busy / {idle} s idle, {cycles} cycle(s) per phase; pipeline {workers} worker(s), {loops} loops per file, reuse {(reuse ? "true" : "false")}");
        using var owner = StartOwner(busy, idle, 7 * 24 * 3600);
        var ownerOps = 0L;
        var ownerBusy = false;
        var ownerReader = Task.Run(async () =>
        {
            while (await owner.StandardOutput.ReadLineAsync() is { } line)
            {
                var f = line.Split(' ');
                Interlocked.Exchange(ref ownerOps, long.Parse(f[0], Inv));
                Volatile.Write(ref ownerBusy, f[1] == "1");
            }
        });

        // The phases, as they happened: the owner alone; then for each policy the pipeline's
        // start (not measured: until its first file is done and the next cycle begins, so that
        // the process's start, the plan and the first containers are left out), and its phase.
        var segments = new List<(string Name, int Start, int End, bool Measured)>();
        var samples = new List<Sample>();
        var clock = Stopwatch.StartNew();
        var (busyJ, totalJ) = ProcStat();
        var ownerNs = CpuNs(OwnerCgroup);
        var pipeNs = PipelineCgroups.Value.Sum(CpuNs);
        Pipeline? running = null;
        var completedBefore = 0;
        async Task TickAsync(string name, bool measured)
        {
            var second = samples.Count + 1;
            var wait = TimeSpan.FromSeconds(second) - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }

            var (b, t) = ProcStat();
            var o = CpuNs(OwnerCgroup);
            var p = PipelineCgroups.Value.Sum(CpuNs);
            // Behind time (a loaded machine), two reads may fall in one clock tick: this sample
            // is then empty, and the next one covers both.
            var wall = (t - totalJ) / 100.0 / Environment.ProcessorCount;
            var tick = wall > 0;
            samples.Add(new Sample(
                second,
                name,
                measured,
                Volatile.Read(ref ownerBusy),
                Interlocked.Read(ref ownerOps),
                tick ? wall : 0,
                tick ? (o - ownerNs) / 1e9 : 0,
                tick ? (p - pipeNs) / 1e9 : 0,
                tick ? (b - busyJ) / 100.0 : 0,
                completedBefore + (running?.Completed() ?? 0)));
            if (tick)
            {
                (busyJ, totalJ, ownerNs, pipeNs) = (b, t, o, p);
            }
        }

        try
        {
            for (var i = 0; i < phase; i++)
            {
                await TickAsync("solo", measured: true);
            }

            segments.Add(("solo", 0, phase, true));
            foreach (var policy in new[] { "always", "harvest" })
            {
                running = Pipeline.Start(cli, workflow, data, Path.Combine(work, "out-" + policy), policy, workers);
                var startedAt = samples.Count;
                var waited = false;
                while ((running.Completed() == 0 && !waited) || samples.Count % cycle != 0)
                {
                    if (!waited && samples.Count - startedAt >= 60 + (5 * cycle))
                    {
                        // On a machine that others keep busy the idle class may get nothing at all: measured all the same, and said.
                        Console.Error.WriteLine($"harvest: the pipeline ({policy}) completed no file in {samples.Count - startedAt} s (see {Path.Combine(work, "out-" + policy)}.log); measuring from the next cycle all the same");
                        waited = true;
                    }

                    await TickAsync(policy, measured: false);
                }

                segments.Add((policy, startedAt, samples.Count, false));
                var measuredFrom = samples.Count;
                for (var i = 0; i < phase; i++)
                {
                    await TickAsync(policy, measured: true);
                }

                segments.Add((policy, measuredFrom, samples.Count, true));
                completedBefore += running.Completed();
                await running.StopAsync();
                running = null;
                Console.Error.WriteLine($"harvest: {policy} measured from {measuredFrom} s to {samples.Count} s");
            }
        }
        finally
        {
            if (running is not null)
            {
                await running.StopAsync();
            }

            if (!owner.HasExited)
            {
                owner.Kill();
            }

            await owner.WaitForExitAsync();
        }

        await ownerReader;
        await File.WriteAllLinesAsync(Path.Combine(work, "samples.csv"), [
            "t,phase,measured,owner_busy,owner_ops,wall_s,owner_core_s,pipeline_core_s,host_core_s,completed",
            .. samples.Select(s => string.Join(',', s.T.ToString(Inv), s.Phase, s.Measured ? "1" : "0", s.OwnerBusy ? "1" : "0", s.OwnerOps.ToString(Inv), s.Wall.ToString("0.###", Inv), s.OwnerCpu.ToString("0.###", Inv), s.PipelineCpu.ToString("0.###", Inv), s.HostCpu.ToString("0.###", Inv), s.Completed.ToString(Inv)))]);
        Report(samples, busy, idle, cycles, workers, loops);
        Plot(samples, segments, png, busy, idle);
        Console.WriteLine();
        Console.WriteLine($"samples: {Path.Combine(work, "samples.csv")}; plot: {png}");
        return 0;
    }

    /// <summary>The owner: one thread per core, busy in bursts; prints, once a second, its operations of that second and whether it was busy.</summary>
    public static int Owner(int busy, int idle, int total)
    {
        // Into a cgroup of its own, at the default weight of an ordinary service.
        if (!CgroupMounts.Machine.Enter(OwnerCgroup, Environment.ProcessId))
        {
            throw new InvalidOperationException($"the owner could not enter the cgroup {OwnerCgroup} ({CgroupMounts.Machine.Name}); run the benchmark as root");
        }

        var ops = new long[Environment.ProcessorCount * 16];
        var clock = Stopwatch.StartNew();
        bool Busy() => clock.Elapsed.TotalSeconds % (busy + idle) < busy;
        var threads = Enumerable.Range(0, Environment.ProcessorCount).Select(i => new Thread(() =>
        {
            // One operation: a fixed amount of integer work (xorshift rounds), the same in every phase.
            var x = (ulong)(i + 1) * 0x9E3779B97F4A7C15UL;
            while (clock.Elapsed.TotalSeconds < total)
            {
                if (!Busy())
                {
                    Thread.Sleep(50);
                    continue;
                }

                for (var k = 0; k < 20000; k++)
                {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                }

                ops[i * 16]++;
            }

            Interlocked.Exchange(ref _sink, (long)x);
        })
        { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        var last = 0L;
        for (var s = 1; s <= total; s++)
        {
            var wait = TimeSpan.FromSeconds(s) - clock.Elapsed;
            var wasBusy = Busy();
            if (wait > TimeSpan.Zero)
            {
                Thread.Sleep(wait);
            }

            var sum = 0L;
            for (var i = 0; i < Environment.ProcessorCount; i++)
            {
                sum += Volatile.Read(ref ops[i * 16]);
            }

            Console.WriteLine($"{sum - last} {(wasBusy ? 1 : 0)}");
            last = sum;
        }

        return 0;
    }

    private static Process StartOwner(int busy, int idle, int total)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { typeof(HarvestBench).Assembly.Location, "harvest-owner", busy.ToString(Inv), idle.ToString(Inv), total.ToString(Inv) })
        {
            psi.ArgumentList.Add(a);
        }

        return Process.Start(psi)!;
    }

    private static string Workflow(int loops, bool reuse) => $$"""
        version: 1
        name: harvest-burn
        description: bench/harvest's pipeline, CPU-bound tasks of one file each
        input:
          uri: /unused
          include: ["**/*.fastq"]
          batch: 1
        steps:
          - name: burn
            image: pipelines-samples/pair-check:1
            command: ["sh", "-c", 'i=0; while [ $i -lt {{loops}} ]; do i=$((i+1)); done; echo "$1,$(busybox wc -l < "$1")" > /out/part.csv', "sh", "{input}"]
            resources: { cpus: 1, memory: 32Mi, timeout: 30m }
            reuse: {{(reuse ? "true" : "false")}}
            outputs: ["*.csv"]
        gather:
          - name: lines
            from: burn/*.csv
            format: csv
            header: false
            columns: [file, lines]
        output:
          uri: /unused
        """;

    private static void Report(List<Sample> samples, int busy, int idle, int cycles, int workers, int loops)
    {
        var cores = Environment.ProcessorCount;
        var phases = new[] { "solo", "always", "harvest" }.Select(name =>
        {
            var m = samples.Where(s => s.Phase == name && s.Measured).ToList();

            // The owner's rate in its bursts, leaving out each burst's first and last second (the switch).
            var inBurst = m.Where((s, i) => s.OwnerBusy && i > 0 && m[i - 1].OwnerBusy && (i + 1 >= m.Count || m[i + 1].OwnerBusy)).ToList();
            var opsPerSecond = inBurst.Count > 0 ? inBurst.Average(s => s.OwnerOps) : 0;
            var files = m.Count > 0 ? m[^1].Completed - samples[samples.IndexOf(m[0]) - (samples.IndexOf(m[0]) > 0 ? 1 : 0)].Completed : 0;
            var ownerCpu = m.Sum(s => s.OwnerCpu);
            var pipelineCpu = m.Sum(s => s.PipelineCpu);
            var hostCpu = m.Sum(s => s.HostCpu);
            var left = (cores * m.Sum(s => s.Wall)) - ownerCpu;
            var idleSeconds = m.Where(s => !s.OwnerBusy).ToList();
            var leftInIdle = (cores * idleSeconds.Sum(s => s.Wall)) - idleSeconds.Sum(s => s.OwnerCpu);

            // Of what nobody else used either (the host's idle CPU, /proc/stat), in the owner's idle periods: on a machine others keep busy, the CPU there was to take.
            var free = idleSeconds.Sum(s => s.PipelineCpu + ((cores * s.Wall) - s.HostCpu));
            return (Name: name, Seconds: m.Count, Ops: opsPerSecond, Files: files, OwnerCpu: ownerCpu, PipelineCpu: pipelineCpu, Others: hostCpu - ownerCpu - pipelineCpu, Share: left > 0 ? pipelineCpu / left : 0, IdleShare: leftInIdle > 0 ? idleSeconds.Sum(s => s.PipelineCpu) / leftInIdle : 0, FreeShare: free > 0 ? idleSeconds.Sum(s => s.PipelineCpu) / free : 0);
        }).ToList();
        var solo = phases[0].Ops;
        Console.WriteLine($"owner: {busy} s busy / {idle} s idle, {cycles} cycle(s) per phase, {cores} thread(s); pipeline: {workers} worker(s), {loops} loops per file");
        Console.WriteLine();
        Console.WriteLine("| phase | seconds | owner ops/s in bursts | of solo | pipeline files/min | owner CPU (core-s) | pipeline CPU (core-s) | others' CPU (core-s) | pipeline's share of the CPU the owner left | of it in the owner's idle periods | of the CPU free of others in those periods |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var p in phases)
        {
            Console.WriteLine(string.Create(Inv, $"| {p.Name} | {p.Seconds} | {p.Ops:0} | {(solo > 0 ? p.Ops / solo : 0):P1} | {p.Files * 60.0 / Math.Max(1, p.Seconds):0.0} | {p.OwnerCpu:0.0} | {p.PipelineCpu:0.0} | {p.Others:0.0} | {p.Share:P1} | {p.IdleShare:P1} | {p.FreeShare:P1} |"));
        }

        Console.WriteLine();
        var h = phases[2];
        Console.WriteLine(string.Create(Inv, $"targets with harvesting on: owner >= 95% of solo in its bursts: {(solo > 0 ? h.Ops / solo : 0):P1} ({(solo > 0 && h.Ops / solo >= 0.95 ? "met" : "not met")}); pipeline >= 70% of the owner's idle CPU: {h.IdleShare:P1} in its idle periods, {h.Share:P1} over the phase ({(h.IdleShare >= 0.7 ? "met" : "not met")})"));
    }

    private static void Plot(List<Sample> samples, List<(string Name, int Start, int End, bool Measured)> plan, string png, int busy, int idle)
    {
        var plt = new ScottPlot.Plot();
        var t = samples.Select(s => s.T).ToArray();
        var top = Math.Max(1, samples.Max(s => s.OwnerOps));
        foreach (var p in plan.Where(p => p.Measured))
        {
            var span = plt.Add.HorizontalSpan(p.Start, p.End);
            span.FillStyle.Color = (p.Name switch { "solo" => ScottPlot.Colors.Gray, "always" => ScottPlot.Colors.Orange, _ => ScottPlot.Colors.Green }).WithAlpha(0.18);
            span.LineStyle.Width = 0;
            var label = plt.Add.Text(p.Name switch { "solo" => "owner alone", "always" => "harvesting off (always)", _ => "harvesting on (when-idle)" }, p.Start + 1, top * 1.22);
            label.LabelFontSize = 12;
        }

        var ops = plt.Add.Scatter(t, samples.Select(s => (double)s.OwnerOps).ToArray());
        ops.LegendText = "owner operations per second (left)";
        ops.MarkerSize = 0;
        ops.Color = ScottPlot.Colors.Black;
        var files = plt.Add.Scatter(t, samples.Select(s => (double)s.Completed).ToArray());
        files.LegendText = "pipeline files completed (right)";
        files.MarkerSize = 0;
        files.LineWidth = 2;
        files.Color = ScottPlot.Colors.Green;
        files.Axes.YAxis = plt.Axes.Right;
        var cpu = plt.Add.Scatter(t, samples.Select(s => s.PipelineRate * top / Environment.ProcessorCount).ToArray());
        cpu.LegendText = $"pipeline CPU (left, scaled: top = {Environment.ProcessorCount} cores)";
        cpu.MarkerSize = 0;
        cpu.Color = ScottPlot.Colors.Orange;
        cpu.LinePattern = ScottPlot.LinePattern.Dotted;
        plt.Title($"bench/harvest: owner {busy} s busy / {idle} s idle beside a pipeline run");
        plt.XLabel("seconds");
        plt.Axes.Left.Label.Text = "owner operations per second";
        plt.Axes.Right.Label.Text = "pipeline files completed";
        plt.Axes.SetLimitsY(0, top * 1.3, plt.Axes.Left);
        plt.Axes.SetLimitsY(0, Math.Max(1, samples.Max(s => s.Completed)) * 1.3, plt.Axes.Right);
        plt.Axes.SetLimitsX(0, samples.Max(s => s.T));
        plt.ShowLegend(ScottPlot.Edge.Bottom);
        Directory.CreateDirectory(Path.GetDirectoryName(png)!);
        plt.SavePng(png, 1400, 600);
    }

    private static (long Busy, long Total) ProcStat()
    {
        var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        long busy = 0, total = 0;
        for (var i = 1; i < Math.Min(f.Length, 9); i++)
        {
            var v = long.Parse(f[i], Inv);
            total += v;
            busy += i is 4 or 5 ? 0 : v;
        }

        return (busy, total);
    }

    private static long CpuNs(string cgroup) => CgroupMounts.Machine.CpuNanos(cgroup) ?? 0;

    /// <summary>One `pipelines run` of the phase (embedded mode), stopped with SIGTERM at the phase's end.</summary>
    private sealed class Pipeline(Process process, string output, string policy, StringBuilder log)
    {
        public string Policy => policy;

        public static Pipeline Start(string cli, string workflow, string data, string output, string policy, int workers)
        {
            if (Directory.Exists(output))
            {
                Directory.Delete(output, recursive: true);
            }

            var psi = new ProcessStartInfo(cli) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "run", workflow, "--verbose", "--local-workers", workers.ToString(Inv), "--set", "input.uri=" + data, "--set", "output.uri=" + output })
            {
                psi.ArgumentList.Add(a);
            }

            psi.Environment.Remove("PIPELINES_POSTGRES");
            psi.Environment["PIPELINES_Harvest__Policy"] = policy == "harvest" ? "when-idle" : "always";
            psi.Environment["PIPELINES_Harvest__OwnerCgroup"] = OwnerCgroup;
            psi.Environment["PIPELINES_Docker__CgroupParent"] = PipelineParent;

            // Quicker than the defaults (10 s, 5 s), which suit a desktop; bursts here are tens of seconds.
            psi.Environment["PIPELINES_Harvest__StartAfter"] = Environment.GetEnvironmentVariable("BENCH_START_AFTER") ?? "00:00:02";
            psi.Environment["PIPELINES_Harvest__ResumeAfter"] = Environment.GetEnvironmentVariable("BENCH_RESUME_AFTER") ?? "00:00:02";
            psi.Environment["PIPELINES_Harvest__SampleInterval"] = Environment.GetEnvironmentVariable("BENCH_SAMPLE_INTERVAL") ?? "00:00:01";
            var p = Process.Start(psi)!;
            var log = new StringBuilder();
            p.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
            p.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            Console.Error.WriteLine($"harvest: pipeline started, policy {psi.Environment["PIPELINES_Harvest__Policy"]}, output {output}");
            return new Pipeline(p, output, policy, log);
        }

        /// <summary>Files completed: their step's kept output is written when the task's attempt succeeds.</summary>
        public int Completed()
        {
            try
            {
                return Directory.Exists(output) ? Directory.EnumerateFiles(output, "part.csv", SearchOption.AllDirectories).Count() : 0;
            }
            catch (IOException)
            {
                return 0;
            }
        }

        public async Task StopAsync()
        {
            if (!process.HasExited)
            {
                using (var term = Process.Start("kill", ["-TERM", process.Id.ToString(Inv)]))
                {
                    await term.WaitForExitAsync();
                }

                using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(90));
                try
                {
                    await process.WaitForExitAsync(patience.Token);
                }
                catch (OperationCanceledException)
                {
                    process.Kill(entireProcessTree: true);
                }
            }

            process.Dispose();
            lock (log)
            {
                File.WriteAllText(output + ".log", log.ToString());
            }
        }
    }
}
