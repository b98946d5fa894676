using System.Diagnostics;
using System.Globalization;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Model;

namespace Pipelines.Bench;

/// <summary>
/// Invoke latency of warm containers (bench/warm): the fork-mode echo and the http example at
/// several concurrencies, against a one-shot container per request (DockerRuntime, what
/// `docker run` does through the API), and the cold start of each mode.
/// </summary>
internal static class WarmBench
{
    private const string ForkImage = "pipelines-examples/warm-fork:1";
    private const string HttpImage = "pipelines-examples/warm-http:1";
    private static readonly Dictionary<string, string> NoEnv = [];
    private static readonly Resources Limits = new(1, 128L * 1024 * 1024, TimeSpan.FromMinutes(1), 64);

    /// <summary>warm METHOD CONCURRENCY REQUESTS: prints one table row.</summary>
    public static async Task<int> RunAsync(string method, int concurrency, int requests)
    {
        var options = new DockerOptions { WarmRoot = "/tmp/pipelines-bench-warm" };
        using var runtime = new DockerRuntime(options);
        await using var pool = new DockerWarmPool(runtime);
        var forkImage = await runtime.ResolveImageAsync(ForkImage, CancellationToken.None);
        var httpImage = await runtime.ResolveImageAsync(HttpImage, CancellationToken.None);
        var fork = new WarmSpec("bench:fork", forkImage, WarmMode.Fork, [], NoEnv, Limits, new Dictionary<string, string>()) { Max = concurrency, MaxQueue = 1000 };
        var http = new WarmSpec("bench:http", httpImage, WarmMode.Http, [], NoEnv, Limits, new Dictionary<string, string>()) { Max = Math.Max(1, concurrency / 8), Concurrency = Math.Min(8, concurrency), MaxQueue = 1000 };

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
            "oneshot" => async () =>
            {
                var result = await runtime.RunAsync(new ContainerSpec(forkImage, ["echo", "hello"], NoEnv, [], Limits, new Dictionary<string, string> { ["org.pipelines.bench"] = "warm" }), CancellationToken.None);
                return result.Log == "hello\n" ? -1 : throw new InvalidOperationException("docker run echo answered " + result.Log);
            }
            ,
            _ => throw new ArgumentException("method is fork, http, oneshot or cold", nameof(method)),
        };

        // Warm-up: the containers the level needs are started before the clock runs.
        await Task.WhenAll(Enumerable.Range(0, method == "oneshot" ? 1 : concurrency).Select(_ => one()));

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
        var label = method switch { "fork" => "fork echo (warm)", "http" => "http example (warm)", _ => "docker run per request (one-shot)" };
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {label} | {concurrency} | {requests} | {Pct(latencies, 0.5):0.00} | {Pct(latencies, 0.95):0.00} | {Pct(latencies, 0.99):0.00} | {requests / seconds:0} | {(engine.Count > 0 ? Pct(engine, 0.5).ToString("0.00", CultureInfo.InvariantCulture) : "")} |"));
        return 0;
    }

    private static double Pct(IReadOnlyList<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
}
