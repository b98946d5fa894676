using System.Net;
using System.Text;
using System.Text.Json;
using Pipelines.Algorithms;
using Pipelines.Functions;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Algorithms;

/// <summary>
/// One `pipelines server` (real PostgreSQL, Swift, Docker engine) and three images of the tests'
/// own, each the warm-fork example plus /bin/answer: one echoes its input, one upper-cases it,
/// one fails with exit 1. Each is pushed as a version of an algorithm that a function follows
/// through <c>algorithm://NAME@stable</c>.
/// </summary>
public sealed class GrayReleaseFixture : IAsyncLifetime
{
    /// <summary>The canary guard's minimum of canary invocations before it judges (Algorithms:Canary:MinRequests).</summary>
    public const int MinRequests = 8;

    private readonly string _warmRoot = Path.Combine("/tmp", "gr-" + Guid.NewGuid().ToString("N")[..8]);

    public TempFolder Temp { get; } = new();

    public AlgorithmFixture Algorithms { get; private set; } = null!;

    public ServerProcess Server { get; private set; } = null!;

    public string Echo { get; private set; } = null!;

    public string Upper { get; private set; } = null!;

    public string Fail { get; private set; } = null!;

    public string Slow { get; private set; } = null!;

    /// <summary>Echoes its input after 500 ms: a canary as correct as stable, and slower.</summary>
    public string Sleepy { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Algorithms = await AlgorithmFixture.CreateAsync();
        const string from = "pipelines-examples/warm-fork:1";
        Echo = await Algorithms.NewImageAsync(from, new Dictionary<string, string> { ["answer"] = "#!/bin/sh\ncat /in/* > /out/out.txt\n" });
        Upper = await Algorithms.NewImageAsync(from, new Dictionary<string, string> { ["answer"] = "#!/bin/sh\ncat /in/* | tr a-z A-Z > /out/out.txt\n" });
        Fail = await Algorithms.NewImageAsync(from, new Dictionary<string, string> { ["answer"] = "#!/bin/sh\necho 'this version is broken' >&2\nexit 1\n" });
        Slow = await Algorithms.NewImageAsync(from, new Dictionary<string, string> { ["answer"] = "#!/bin/sh\nsleep 2\ncat /in/* > /out/out.txt\n" });
        Sleepy = await Algorithms.NewImageAsync(from, new Dictionary<string, string> { ["answer"] = "#!/bin/sh\nsleep 0.5\ncat /in/* > /out/out.txt\n" });
        Server = await ServerProcess.StartAsync(Env(new Dictionary<string, string?> { ["PIPELINES_Server__Roles"] = "api,dashboard" }));
    }

    /// <summary>The server's environment; the CLI's too (it reads the same catalog).</summary>
    public Dictionary<string, string?> Env(Dictionary<string, string?>? more = null)
    {
        var env = new Dictionary<string, string?>
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = Algorithms.Schema,
            ["PIPELINES_Hangfire__Schema"] = Algorithms.Schema + "_hangfire",
            ["PIPELINES_HOME"] = Temp.Combine("home"),
            ["PIPELINES_Server__Bucket"] = Algorithms.Bucket,
            ["PIPELINES_Algorithms__Store"] = Algorithms.StoreUri,
            ["PIPELINES_Algorithms__Canary__MinRequests"] = MinRequests.ToString(System.Globalization.CultureInfo.InvariantCulture),

            // The latency margin is wide: a cold start on a loaded machine must not look like a slow canary here.
            ["PIPELINES_Algorithms__Canary__MaxP95IncreaseMs"] = "60000",
            ["PIPELINES_Functions__Output"] = $"s3://{Algorithms.Bucket}/functions/",
            ["PIPELINES_Docker__WarmRoot"] = _warmRoot,
        };
        foreach (var (k, v) in more ?? [])
        {
            env[k] = v;
        }

        return env;
    }

    /// <summary>Pushes the images as versions of <paramref name="algorithm"/> (the first is stable) and deploys a function following its stable channel.</summary>
    public async Task DeployAsync(HttpClient http, string algorithm, params (string Version, string Image)[] versions)
    {
        var service = Algorithms.Service();
        foreach (var (version, image) in versions)
        {
            await service.PushLocalImageAsync(algorithm, version, image, null, "tester", CancellationToken.None);
        }

        using var deployed = await http.PostAsync("/api/functions", new StringContent($"""
            name: {algorithm}
            image: algorithm://{algorithm}@stable
            command: ["answer"]
            output: out.txt
            max: 2
            """, Encoding.UTF8, "application/yaml"));
        Assert.True(deployed.IsSuccessStatusCode, await deployed.Content.ReadAsStringAsync());
    }

    public async Task DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }

        if (Algorithms is not null)
        {
            await Algorithms.DisposeAsync();
        }

        Temp.Dispose();
        if (Directory.Exists(_warmRoot))
        {
            Directory.Delete(_warmRoot, recursive: true);
        }
    }
}

/// <summary>
/// Gray release of functions end to end: a 50% canary splits invocations within binomial
/// bounds and promote moves them all; an erroring canary is rolled back by the guard after its
/// minimum of requests, with the reason recorded and shown, and so is a canary slower than
/// stable past both latency margins; an async invocation is routed when a separate worker runs
/// it; shadow mode answers with stable's output and records each copy equal or different.
/// </summary>
[Integration]
public sealed class GrayReleaseTests(GrayReleaseFixture f) : IClassFixture<GrayReleaseFixture>
{
    private sealed record Answer(HttpStatusCode Status, string Body, string? AlgorithmVersion, string? Invocation);

    private static async Task<Answer> InvokeAsync(HttpClient http, string function, string text)
    {
        using var r = await http.PostAsync($"/api/functions/{function}/invoke", new StringContent(text));
        var body = await r.Content.ReadAsStringAsync();
        return new Answer(
            r.StatusCode, body,
            r.Headers.TryGetValues("Pipelines-Algorithm-Version", out var v) ? v.Single() : null,
            r.Headers.TryGetValues("Pipelines-Invocation", out var i) ? i.Single() : null);
    }

    private static async Task<JsonElement> GetAsync(HttpClient http, string url)
    {
        using var r = await http.GetAsync(url);
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"{url}: {(int)r.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static async Task PostOkAsync(HttpClient http, string url)
    {
        using var r = await http.PostAsync(url, null);
        Assert.True(r.IsSuccessStatusCode, $"{url}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
    }

    private static List<JsonElement> Invocations(JsonElement list, string? route = null) =>
        list.EnumerateArray().Where(i => route is null || i.GetProperty("route").GetString() == route).ToList();

    [Fact]
    public async Task A_canary_at_50_percent_splits_invocations_within_binomial_bounds_and_promote_moves_them_all()
    {
        using var http = f.Server.Client();
        await f.DeployAsync(http, "gray-split", ("1.0", f.Echo), ("2.0", f.Upper));
        await PostOkAsync(http, "/api/algorithms/gray-split/canary/2.0?percent=50");

        const int n = 120;
        var answers = new Answer[n];
        await Parallel.ForEachAsync(Enumerable.Range(0, n), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (i, _) =>
            answers[i] = await InvokeAsync(http, "gray-split", $"request {i}"));

        Assert.All(answers, a => Assert.True(a.Status == HttpStatusCode.OK, a.Body));
        for (var i = 0; i < n; i++)
        {
            // The header says which version answered, and the answer is that version's.
            Assert.Equal(answers[i].AlgorithmVersion == "2.0" ? $"REQUEST {i}" : $"request {i}", answers[i].Body);
        }

        // Binomial(120, 0.5): sd 5.5; 22 is 4 sd (a false failure about once in 16,000 runs).
        var canary = answers.Count(a => a.AlgorithmVersion == "2.0");
        Assert.True(Math.Abs(canary - (n / 2)) <= 22, $"{canary} of {n} went to the canary at 50%");
        Assert.Equal(n - canary, answers.Count(a => a.AlgorithmVersion == "1.0"));

        // Every record names the version that served it; the figures are per algorithm version.
        var records = Invocations(await GetAsync(http, "/api/functions/gray-split/invocations?limit=1000"));
        Assert.Equal(canary, records.Count(r => r.GetProperty("algorithmVersion").GetString() == "2.0" && r.GetProperty("route").GetString() == "canary"));
        Assert.Equal(n - canary, records.Count(r => r.GetProperty("algorithmVersion").GetString() == "1.0" && r.GetProperty("route").GetString() == "stable"));
        var detail = await GetAsync(http, "/api/functions/gray-split?window=1h");
        var stats = detail.GetProperty("stats").EnumerateArray().ToDictionary(s => s.GetProperty("algorithmVersion").GetString()!);
        Assert.Equal((long)canary, stats["2.0"].GetProperty("requests").GetInt64());
        Assert.Equal(0.0, stats["2.0"].GetProperty("errorRate").GetDouble());
        Assert.True(stats["1.0"].GetProperty("p95Ms").GetDouble() >= stats["1.0"].GetProperty("p50Ms").GetDouble());
        var release = detail.GetProperty("release");
        Assert.Equal(("1.0", "2.0", 50), (release.GetProperty("stable").GetString(), release.GetProperty("canary").GetString(), release.GetProperty("percent").GetInt32()));

        await PostOkAsync(http, "/api/algorithms/gray-split/promote/2.0");
        for (var i = 0; i < 5; i++)
        {
            var a = await InvokeAsync(http, "gray-split", "after");
            Assert.Equal((HttpStatusCode.OK, "AFTER", "2.0"), (a.Status, a.Body, a.AlgorithmVersion));
        }

        using var noCanary = await http.PostAsync("/api/algorithms/gray-split/abort", null);
        Assert.Equal(HttpStatusCode.NotFound, noCanary.StatusCode);
    }

    [Fact]
    public async Task An_erroring_canary_is_rolled_back_automatically_after_its_minimum_of_requests_with_the_reason_recorded()
    {
        using var http = f.Server.Client();
        await f.DeployAsync(http, "gray-fail", ("1.0", f.Echo), ("2.0", f.Fail));
        await PostOkAsync(http, "/api/algorithms/gray-fail/canary/2.0?percent=50");

        // One at a time: the guard looks after each of the canary's invocations, so it ends the canary at its MinRequests-th.
        var served = new List<Answer>();
        while (served.Count(a => a.AlgorithmVersion == "2.0") < GrayReleaseFixture.MinRequests && served.Count < 400)
        {
            served.Add(await InvokeAsync(http, "gray-fail", "x"));
        }

        var failed = served.Where(a => a.AlgorithmVersion == "2.0").ToList();
        Assert.Equal(GrayReleaseFixture.MinRequests, failed.Count);
        Assert.All(failed, a => Assert.Equal(HttpStatusCode.BadGateway, a.Status));
        Assert.All(served.Where(a => a.AlgorithmVersion == "1.0"), a => Assert.Equal((HttpStatusCode.OK, "x"), (a.Status, a.Body)));

        var algorithm = await GetAsync(http, "/api/algorithms/gray-fail");
        Assert.DoesNotContain(algorithm.GetProperty("channels").EnumerateArray(), c => c.GetProperty("channel").GetString() == "canary");
        var rollback = algorithm.GetProperty("events")[0];
        Assert.Equal(("rollback", "2.0", CanaryGuard.Who), (rollback.GetProperty("action").GetString(), rollback.GetProperty("version").GetString(), rollback.GetProperty("by").GetString()));
        var reason = rollback.GetProperty("reason").GetString()!;
        Assert.Contains($"error rate 100.0% over {GrayReleaseFixture.MinRequests} ended invocation(s)", reason, StringComparison.Ordinal);
        Assert.Contains("Algorithms:Canary:MaxErrorRateIncrease", reason, StringComparison.Ordinal);
        var release = (await GetAsync(http, "/api/functions/gray-fail")).GetProperty("release");
        Assert.False(release.TryGetProperty("canary", out var canary) && canary.ValueKind != JsonValueKind.Null, release.ToString());
        Assert.Equal(reason, release.GetProperty("events")[0].GetProperty("reason").GetString());

        // Afterwards every invocation goes to stable.
        for (var i = 0; i < 20; i++)
        {
            var a = await InvokeAsync(http, "gray-fail", "after");
            Assert.Equal((HttpStatusCode.OK, "after", "1.0"), (a.Status, a.Body, a.AlgorithmVersion));
        }

        var cli = await CliRunner.RunAsync(["algorithm", "show", "gray-fail"], f.Env());
        Assert.True(cli.ExitCode == 0, cli.ToString());
        Assert.Contains("rollback 2.0 by auto-rollback: canary 2.0 of function gray-fail (version 1): error rate 100.0%", cli.Stdout, StringComparison.Ordinal);

        // The dashboard's Functions page: a row per algorithm version, and the rollback with its reason.
        using var page = await http.GetAsync("/hangfire/functions");
        var html = await page.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("<tr class=\"release danger\" data-function=\"gray-fail\">", html, StringComparison.Ordinal);
        Assert.Contains("rollback 2.0 by auto-rollback: canary 2.0 of function gray-fail (version 1): error rate 100.0%", html, StringComparison.Ordinal);
        Assert.Contains("data-function=\"gray-fail\" data-version=\"1\" data-algorithm-version=\"2.0\" data-shadow=\"false\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Shadow_mode_answers_with_stable_and_records_each_copy_as_equal_or_different()
    {
        using var http = f.Server.Client();
        await f.DeployAsync(http, "gray-shadow", ("1.0", f.Echo), ("2.0", f.Upper), ("3.0", f.Echo));

        await PostOkAsync(http, "/api/algorithms/gray-shadow/canary/2.0?shadow=true");
        var first = await ShadowRoundAsync(http, 6, "2.0");
        Assert.All(first, s => Assert.False(s.GetProperty("shadowEqual").GetBoolean()));

        await PostOkAsync(http, "/api/algorithms/gray-shadow/canary/3.0?shadow=true");
        var second = await ShadowRoundAsync(http, 4, "3.0");
        Assert.All(second, s => Assert.True(s.GetProperty("shadowEqual").GetBoolean()));

        var stats = (await GetAsync(http, "/api/functions/gray-shadow")).GetProperty("stats").EnumerateArray()
            .Where(s => s.GetProperty("shadow").GetBoolean()).ToDictionary(s => s.GetProperty("algorithmVersion").GetString()!);
        Assert.Equal((6L, 0L, 6L), (stats["2.0"].GetProperty("requests").GetInt64(), stats["2.0"].GetProperty("equal").GetInt64(), stats["2.0"].GetProperty("different").GetInt64()));
        Assert.Equal((4L, 4L, 0L), (stats["3.0"].GetProperty("requests").GetInt64(), stats["3.0"].GetProperty("equal").GetInt64(), stats["3.0"].GetProperty("different").GetInt64()));

        var cli = await CliRunner.RunAsync(["function", "show", "gray-shadow", "--server", f.Server.Url], new Dictionary<string, string?>());
        Assert.True(cli.ExitCode == 0, cli.ToString());
        Assert.Contains("release:  follows gray-shadow@stable: stable 1.0, shadow canary 3.0 (100% copied)", cli.Stdout, StringComparison.Ordinal);
        Assert.Contains("version 1 (shadow copies on 2.0): 6 request(s), 0 error(s) (0%)", cli.Stdout, StringComparison.Ordinal);
        Assert.Contains("0 equal to stable, 6 different", cli.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_full_shadow_queue_drops_copies_each_with_a_record_and_the_callers_never_wait_for_them()
    {
        // A server of its own whose shadow queue holds one copy, and a canary that takes 2 s per copy.
        var warm = Path.Combine("/tmp", "gq-" + Guid.NewGuid().ToString("N")[..8]);
        await using (var server = await ServerProcess.StartAsync(f.Env(new Dictionary<string, string?>
        {
            ["PIPELINES_Server__Roles"] = "api",
            ["PIPELINES_Functions__ShadowQueue"] = "1",
            ["PIPELINES_Functions__ShadowConcurrency"] = "1",
            ["PIPELINES_Docker__WarmRoot"] = warm,
        })))
        {
            using var http = server.Client();
            await f.DeployAsync(http, "gray-drop", ("1.0", f.Echo), ("2.0", f.Slow));
            await PostOkAsync(http, "/api/algorithms/gray-drop/canary/2.0?shadow=true");
            await InvokeAsync(http, "gray-drop", "warm up");

            const int n = 6;
            var answers = await Task.WhenAll(Enumerable.Range(0, n).Select(i => InvokeAsync(http, "gray-drop", $"burst {i}")));
            Assert.All(answers, a => Assert.Equal((HttpStatusCode.OK, "1.0"), (a.Status, a.AlgorithmVersion)));
            var primaries = answers.Select(a => a.Invocation!).ToHashSet();

            // Every caller's invocation has its one shadow record: run, or dropped with the reason.
            var shadows = await ShadowsOfAsync(http, "gray-drop", primaries);
            var dropped = shadows.Where(s => s.GetProperty("status").GetString() == "refused").ToList();
            Assert.NotEmpty(dropped);
            Assert.All(dropped, d => Assert.Equal("shadow copy dropped: the shadow queue was full (Functions:ShadowQueue = 1)", d.GetProperty("error").GetString()));
            Assert.All(shadows.Except(dropped), s => Assert.Equal("succeeded", s.GetProperty("status").GetString()));

            // Drops are refusals, not the canary's errors: it is not rolled back for them.
            var algorithm = await GetAsync(http, "/api/algorithms/gray-drop");
            Assert.Contains(algorithm.GetProperty("channels").EnumerateArray(), c => c.GetProperty("channel").GetString() == "canary");
            var stats = (await GetAsync(http, "/api/functions/gray-drop")).GetProperty("stats").EnumerateArray().Single(s => s.GetProperty("shadow").GetBoolean());
            Assert.Equal(dropped.Count, stats.GetProperty("refused").GetInt64());
        }

        if (Directory.Exists(warm))
        {
            Directory.Delete(warm, recursive: true);
        }
    }

    [Fact]
    public async Task A_canary_slower_than_stable_past_both_latency_margins_is_rolled_back_with_the_latency_figures_in_the_reason()
    {
        // A server of its own whose latency margins are those of a real deployment (1.5 times and 100 ms), not the fixture's wide ones.
        var warm = Path.Combine("/tmp", "gl-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            await using (var server = await ServerProcess.StartAsync(f.Env(new Dictionary<string, string?>
            {
                ["PIPELINES_Server__Roles"] = "api",
                ["PIPELINES_Algorithms__Canary__MaxP95Ratio"] = "1.5",
                ["PIPELINES_Algorithms__Canary__MaxP95IncreaseMs"] = "100",
                ["PIPELINES_Docker__WarmRoot"] = warm,
            })))
            {
                using var http = server.Client();
                await f.DeployAsync(http, "gray-slow", ("1.0", f.Echo), ("2.0", f.Sleepy));
                await PostOkAsync(http, "/api/algorithms/gray-slow/canary/2.0?percent=50");

                // One at a time, until the guard ends the canary (it judges latency once both versions have MinRequests): a bound, not a wait.
                var served = new List<Answer>();
                while (served.Count < 200)
                {
                    var a = await InvokeAsync(http, "gray-slow", "x");
                    served.Add(a);
                    Assert.Equal((HttpStatusCode.OK, "x"), (a.Status, a.Body));
                    if (a.AlgorithmVersion == "2.0" && !(await GetAsync(http, "/api/algorithms/gray-slow")).GetProperty("channels").EnumerateArray().Any(c => c.GetProperty("channel").GetString() == "canary"))
                    {
                        break;
                    }
                }

                var algorithm = await GetAsync(http, "/api/algorithms/gray-slow");
                Assert.DoesNotContain(algorithm.GetProperty("channels").EnumerateArray(), c => c.GetProperty("channel").GetString() == "canary");
                var rollback = algorithm.GetProperty("events")[0];
                Assert.Equal(("rollback", "2.0", CanaryGuard.Who), (rollback.GetProperty("action").GetString(), rollback.GetProperty("version").GetString(), rollback.GetProperty("by").GetString()));
                var reason = rollback.GetProperty("reason").GetString()!;
                Assert.Matches(@"p95 latency [0-9.]+ ms \(without cold starts\) over [0-9]+ ended invocation\(s\), stable's [0-9.]+ ms over [0-9]+: more than 1.5 times \(Algorithms:Canary:MaxP95Ratio\) and 100 ms more \(Algorithms:Canary:MaxP95IncreaseMs\)", reason);

                // Judged only with enough of both: the canary's minimum, and stable's, were served first.
                var canaryServed = served.Count(a => a.AlgorithmVersion == "2.0");
                Assert.True(canaryServed >= GrayReleaseFixture.MinRequests, $"rolled back after {canaryServed} canary invocation(s)");
                Assert.True(served.Count(a => a.AlgorithmVersion == "1.0") >= GrayReleaseFixture.MinRequests);

                // The figures in the reason are the canary's: over 500 ms, the sleep of every one of its answers.
                var p95 = double.Parse(System.Text.RegularExpressions.Regex.Match(reason, @"p95 latency ([0-9.]+) ms").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                Assert.True(p95 >= 500, reason);
                for (var i = 0; i < 5; i++)
                {
                    Assert.Equal("1.0", (await InvokeAsync(http, "gray-slow", "after")).AlgorithmVersion);
                }
            }
        }
        finally
        {
            if (Directory.Exists(warm))
            {
                Directory.Delete(warm, recursive: true);
            }
        }
    }

    [Fact]
    public async Task An_async_invocation_routed_through_the_canary_is_run_by_a_separate_worker_and_its_record_names_the_canary_version()
    {
        // The split: a server with the api role alone (it runs no job), and a `pipelines worker` process.
        var warm = Path.Combine("/tmp", "ga-" + Guid.NewGuid().ToString("N")[..8]);
        var worker = CliRunner.Start(["worker", "--roles", "worker", "--verbose"], f.Env(new Dictionary<string, string?> { ["PIPELINES_Docker__WarmRoot"] = warm + "w" }));
        var said = new StringBuilder();
        void Keep(object? sender, System.Diagnostics.DataReceivedEventArgs e)
        {
            lock (said)
            {
                said.AppendLine(e.Data);
            }
        }

        worker.OutputDataReceived += Keep;
        worker.ErrorDataReceived += Keep;
        worker.BeginOutputReadLine();
        worker.BeginErrorReadLine();
        try
        {
            await using var server = await ServerProcess.StartAsync(f.Env(new Dictionary<string, string?>
            {
                ["PIPELINES_Server__Roles"] = "api",
                ["PIPELINES_Docker__WarmRoot"] = warm,
            }));
            using var http = server.Client();
            await f.DeployAsync(http, "gray-async", ("1.0", f.Echo), ("2.0", f.Upper));
            await PostOkAsync(http, "/api/algorithms/gray-async/canary/2.0?percent=100");

            using var queued = await http.PostAsync("/api/functions/gray-async/invoke?async=true", new StringContent("routed later"));
            Assert.Equal(HttpStatusCode.Accepted, queued.StatusCode);
            var location = queued.Headers.Location!.OriginalString;

            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            JsonElement done;
            while (true)
            {
                done = await GetAsync(http, location);
                if (done.GetProperty("status").GetString() is not ("queued" or "running"))
                {
                    break;
                }

                await Task.Delay(250, deadline.Token);
            }

            Assert.True(done.GetProperty("status").GetString() == "succeeded", done.ToString());
            Assert.True(done.GetProperty("async").GetBoolean());
            Assert.Equal(("2.0", "canary"), (done.GetProperty("algorithmVersion").GetString(), done.GetProperty("route").GetString()));
            var canaryDigest = await f.Algorithms.IdOfAsync(f.Upper);
            Assert.Equal(canaryDigest, done.GetProperty("imageDigest").GetString());
            using var output = await http.GetAsync(done.GetProperty("outputUrl").GetString());
            Assert.Equal("ROUTED LATER", await output.Content.ReadAsStringAsync());

            // The server has no worker role: the worker process ran it, and the server did not.
            var ran = $"function gray-async@1 invocation {done.GetProperty("id").GetString()}: succeeded";
            Assert.DoesNotContain(ran, server.Output, StringComparison.Ordinal);
            lock (said)
            {
                Assert.Contains(ran, said.ToString(), StringComparison.Ordinal);
            }
        }
        finally
        {
            if (!worker.HasExited)
            {
                worker.Kill(entireProcessTree: true);
                await worker.WaitForExitAsync();
            }

            worker.Dispose();
            foreach (var d in new[] { warm, warm + "w" }.Where(Directory.Exists))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }

    /// <summary>
    /// Invokes <paramref name="n"/> times: stable answers each; then waits (polling the records,
    /// up to a generous bound) for the n shadow copies, each on <paramref name="version"/>, of one of those invocations.
    /// </summary>
    private static async Task<List<JsonElement>> ShadowRoundAsync(HttpClient http, int n, string version)
    {
        var primaries = new HashSet<string>();
        for (var i = 0; i < n; i++)
        {
            var a = await InvokeAsync(http, "gray-shadow", $"shadowed {version} {i}");
            Assert.Equal((HttpStatusCode.OK, $"shadowed {version} {i}", "1.0"), (a.Status, a.Body, a.AlgorithmVersion));
            primaries.Add(a.Invocation!);
        }

        var shadows = await ShadowsOfAsync(http, "gray-shadow", primaries);
        Assert.All(shadows, s => Assert.Equal(("succeeded", version), (s.GetProperty("status").GetString(), s.GetProperty("algorithmVersion").GetString())));
        return shadows;
    }

    /// <summary>
    /// The shadow records of <paramref name="primaries"/> once each has ended (polling the records,
    /// a generous bound as the only limit); asserts that every one of them has exactly one.
    /// </summary>
    private static async Task<List<JsonElement>> ShadowsOfAsync(HttpClient http, string function, HashSet<string> primaries)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        while (true)
        {
            var shadows = Invocations(await GetAsync(http, $"/api/functions/{function}/invocations?limit=1000"), "shadow")
                .Where(s => primaries.Contains(s.GetProperty("shadowOf").GetString()!)).ToList();
            if (shadows.Count >= primaries.Count && shadows.All(s => s.GetProperty("status").GetString() is not ("queued" or "running")))
            {
                Assert.Equal(primaries.Count, shadows.Count);
                Assert.Equal(primaries, shadows.Select(s => s.GetProperty("shadowOf").GetString()!).ToHashSet());
                return shadows;
            }

            await Task.Delay(100, deadline.Token);
        }
    }
}

/// <summary>The guard's rule on figures alone: too few, errors over the margin, p95 over both latency margins.</summary>
[Unit]
public sealed class CanaryVerdictTests
{
    private static readonly CanaryOptions Options = new() { MinRequests = 10, MaxErrorRateIncrease = 0.05, MaxP95Ratio = 1.5, MaxP95IncreaseMs = 100 };

    private static InvocationStats Stats(long ended, long errors, double p95) => new("f", 1, ended, errors, p95 / 2, p95 * 3, null) { Ended = ended, WarmP95Ms = p95 };

    [Fact]
    public void A_canary_is_judged_only_after_its_minimum_and_only_past_the_margins()
    {
        Assert.Null(CanaryGuard.Verdict(Stats(9, 9, 10), Stats(100, 0, 10), Options));
        Assert.Null(CanaryGuard.Verdict(Stats(100, 6, 10), Stats(100, 2, 10), Options));
        Assert.Contains("error rate 7.0%", CanaryGuard.Verdict(Stats(100, 7, 10), Stats(100, 0, 10), Options), StringComparison.Ordinal);
        Assert.Contains("error rate 100.0%", CanaryGuard.Verdict(Stats(10, 10, 10), null, Options), StringComparison.Ordinal);

        // Latency: over 1.5 times stable's and by more than 100 ms, and only against a stable with its own minimum.
        Assert.Null(CanaryGuard.Verdict(Stats(100, 0, 90), Stats(100, 0, 10), Options));
        Assert.Null(CanaryGuard.Verdict(Stats(100, 0, 1400), Stats(100, 0, 1000), Options));
        Assert.Null(CanaryGuard.Verdict(Stats(100, 0, 5000), Stats(5, 0, 10), Options));
        Assert.Contains("p95 latency 1600 ms", CanaryGuard.Verdict(Stats(100, 0, 1600), Stats(100, 0, 1000), Options), StringComparison.Ordinal);

        // Refusals (a full queue, dropped shadow copies) are not the canary's doing: only what ran is judged.
        Assert.Null(CanaryGuard.Verdict(Stats(20, 15, 10) with { Refused = 15 }, Stats(100, 0, 10), Options));
        Assert.Null(CanaryGuard.Verdict(Stats(30, 20, 10) with { Refused = 20 }, Stats(100, 0, 10), Options));
        Assert.Contains("error rate 50.0% over 10", CanaryGuard.Verdict(Stats(30, 25, 10) with { Refused = 20 }, Stats(100, 0, 10), Options), StringComparison.Ordinal);
    }
}
