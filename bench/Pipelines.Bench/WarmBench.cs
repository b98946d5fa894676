using System.Diagnostics;
using System.Globalization;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Model;
using Pipelines.Worker;

namespace Pipelines.Bench;

/// <summary>
/// Invoke latency of warm containers (bench/warm): the fork-mode echo and the http example at
/// several concurrencies, against a one-shot container per request (DockerEngine.Runtime, what
/// `docker run` does through the API), and the cold start of each mode.
/// </summary>
internal static class WarmBench
{
    private const string ForkImage = "pipelines-examples/warm-fork:1";
    private const string HttpImage = "pipelines-examples/warm-http:1";
    private const string FastqImage = "pipelines-samples/fastq-stats:1";
    private static readonly Dictionary<string, string> NoEnv = [];
    private static readonly Resources Limits = new(1, 128L * 1024 * 1024, TimeSpan.FromMinutes(1), 64);
    private static readonly WorkerOptions Worker = new();
    private static readonly OutputLimits OutputLimits = Worker.LimitsFor(Limits, "function", "bench");

    /// <summary>warm METHOD CONCURRENCY REQUESTS: prints one table row.</summary>
    public static async Task<int> RunAsync(string method, int concurrency, int requests, string? fastq = null)
    {
        var options = new DockerOptions { WarmRoot = "/tmp/pipelines-bench-warm" };
        using var docker = new DockerEngine(options);
        var runtime = docker.Runtime;
        await using var pool = new DockerWarmPool(docker.Containers, options, Worker.QuotaWatch());
        var forkImage = await runtime.ResolveImageAsync(ForkImage, CancellationToken.None);
        var httpImage = await runtime.ResolveImageAsync(HttpImage, CancellationToken.None);
        var fork = new WarmSpec("bench:fork", forkImage, WarmMode.Fork, [], NoEnv, Limits, new Dictionary<string, string>()) { Limits = OutputLimits, Max = ForkMax(concurrency), MaxQueue = 1000 };
        var fastqImage = await runtime.ResolveImageAsync(FastqImage, CancellationToken.None);
        var fastqSpec = new WarmSpec("bench:fastq", fastqImage, WarmMode.Fork, [], NoEnv, Limits, new Dictionary<string, string>()) { Limits = OutputLimits, Max = ForkMax(concurrency), MaxQueue = 1000 };
        var oneShotIn = Path.Combine(options.WarmRoot, "oneshot-" + Environment.ProcessId);
        var http = new WarmSpec("bench:http", httpImage, WarmMode.Http, [], NoEnv, Limits, new Dictionary<string, string>()) { Limits = OutputLimits, Max = Math.Max(1, concurrency / 8), Concurrency = Math.Min(8, concurrency), MaxQueue = 1000 };

        if (method == "cold")
        {
            foreach (var spec in (WarmSpec[])[fork, http])
            {
                var times = new List<double>();
                for (var i = 0; i < requests; i++)
                {
                    var clock = Stopwatch.StartNew();
                    await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
                    {
                        times.Add(clock.Elapsed.TotalMilliseconds);
                    }

                    await pool.RetireAsync(spec.Owner, CancellationToken.None);
                }

                times.Sort();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| cold start, {spec.Mode.ToString().ToLowerInvariant()} | {requests} | {Pct(times, 0.5):0} ms | {times[0]:0} ms | {times[^1]:0} ms |"));
            }

            return 0;
        }

        Func<Task<double>> one = method switch
        {
            "fork" => async () =>
            {
                await using var lease = await pool.AcquireAsync(fork, CancellationToken.None);
                var clock = Stopwatch.StartNew();
                var result = await lease.RunAsync(["echo", "hello"], NoEnv, TimeSpan.FromMinutes(1), CancellationToken.None);
                var total = clock.Elapsed;
                if (result.Log != "hello\n")
                {
                    throw new InvalidOperationException("fork echo answered " + result.Log);
                }

                // The engine's part: everything but the process's own run (fork to exit, by the helper's clock).
                return (total - result.Duration).TotalMilliseconds;
            }
            ,
            "http" => async () =>
            {
                await using var lease = await pool.AcquireAsync(http, CancellationToken.None);
                using var response = await lease.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/") { Content = new StringContent("hello world") }, TimeSpan.FromMinutes(1), CancellationToken.None);
                var body = await response.Content.ReadAsStringAsync();
                return body == "bonjour monde" ? -1 : throw new InvalidOperationException("http answered " + body);
            }
            ,
            "fork-fastq" => async () =>
            {
                // One FASTQ file in, the stats table out: the sample step as a warm request.
                await using var lease = await pool.AcquireAsync(fastqSpec, CancellationToken.None);
                File.Copy(fastq!, Path.Combine(lease.InDir, "reads.fastq"));
                var clock = Stopwatch.StartNew();
                var result = await lease.RunAsync(["fastq-stats", "--out", "/out/stats.tsv", "/in/reads.fastq"], NoEnv, TimeSpan.FromMinutes(1), CancellationToken.None);
                var total = clock.Elapsed;
                return result.Succeeded && File.Exists(Path.Combine(lease.OutDir, "stats.tsv")) ? (total - result.Duration).TotalMilliseconds : throw new InvalidOperationException("fastq-stats failed: " + result.Log);
            }
            ,
            "oneshot-fastq" => async () =>
            {
                var folder = Path.Combine(oneShotIn, Guid.NewGuid().ToString("N"));
                Directory.CreateDirectory(Path.Combine(folder, "in"));
                Directory.CreateDirectory(Path.Combine(folder, "out"));
                File.SetUnixFileMode(Path.Combine(folder, "out"), (UnixFileMode)0b111_111_111);
                File.Copy(fastq!, Path.Combine(folder, "in", "reads.fastq"));
                var mounts = new List<Mount> { new(Path.Combine(folder, "in"), "/in", ReadOnly: true), new(Path.Combine(folder, "out"), "/out", ReadOnly: false) };
                var result = await runtime.RunAsync(new ContainerSpec(fastqImage, ["fastq-stats", "--out", "/out/stats.tsv", "/in/reads.fastq"], NoEnv, mounts, Limits, new Dictionary<string, string> { ["org.pipelines.bench"] = "warm" }), CancellationToken.None);
                var ok = result.Succeeded && File.Exists(Path.Combine(folder, "out", "stats.tsv"));
                Directory.Delete(folder, recursive: true);
                return ok ? -1 : throw new InvalidOperationException("fastq-stats failed: " + result.Log);
            }
            ,
            "oneshot" => async () =>
            {
                var result = await runtime.RunAsync(new ContainerSpec(forkImage, ["echo", "hello"], NoEnv, [], Limits, new Dictionary<string, string> { ["org.pipelines.bench"] = "warm" }), CancellationToken.None);
                return result.Log == "hello\n" ? -1 : throw new InvalidOperationException("docker run echo answered " + result.Log);
            }
            ,
            _ => throw new ArgumentException("method is fork, http, oneshot, fork-fastq, oneshot-fastq or cold", nameof(method)),
        };

        // Warm-up: the containers the level needs are started before the clock runs.
        await Task.WhenAll(Enumerable.Range(0, method.StartsWith("oneshot", StringComparison.Ordinal) ? 1 : concurrency).Select(_ => one()));

        var latencies = new double[requests];
        var overheads = new double[requests];
        var next = -1;
        var wall = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests)
            {
                var clock = Stopwatch.StartNew();
                overheads[i] = await one();
                latencies[i] = clock.Elapsed.TotalMilliseconds;
            }
        }));
        var seconds = wall.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        var engine = overheads.Where(o => o >= 0).Order().ToList();
        var label = method switch
        {
            "fork" => "fork echo (warm)",
            "http" => "http example (warm)",
            "fork-fastq" => "fork fastq-stats (warm)",
            "oneshot-fastq" => "fastq-stats, docker run per request",
            _ => "echo, docker run per request (one-shot)",
        };
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {label} | {concurrency} | {requests} | {Pct(latencies, 0.5):0.00} | {Pct(latencies, 0.95):0.00} | {Pct(latencies, 0.99):0.00} | {requests / seconds:0.##} | {(engine.Count > 0 ? Pct(engine, 0.5).ToString("0.00", CultureInfo.InvariantCulture) : "")} |"));
        return 0;
    }

    /// <summary>Fork containers at a concurrency: one per concurrent request, or BENCH_FORK_MAX at most (the rest queue).</summary>
    private static int ForkMax(int concurrency) =>
        int.TryParse(Environment.GetEnvironmentVariable("BENCH_FORK_MAX"), System.Globalization.CultureInfo.InvariantCulture, out var max) && max > 0 ? Math.Min(max, concurrency) : concurrency;

    private static double Pct(IReadOnlyList<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
}
