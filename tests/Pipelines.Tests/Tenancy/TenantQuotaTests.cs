using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Docker.DotNet.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pipelines.Containers.Warm;
using Pipelines.Server;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Tenancy;

/// <summary>
/// A tenant's quotas on one real server (in this process, with the worker role: PostgreSQL, S3,
/// Docker): lab-r may invoke twice a minute, lab-c run one invocation at once and ask for at most
/// 1Gi; lab-w and lab-n keep one warm container each. Past them a synchronous invoke gets 429
/// with Retry-After naming the quota, an async one waits (held, saying why) and then runs, a
/// min_warm above the quota starts what it allows and says why not the rest; a run or a deploy
/// asking for too much is refused 400. lab-f floods async invocations beside lab-g's few, lab-s
/// queues more than the slots and is told it waits for one. lab-m
/// has a budget its first tasks spend (TenantQuotaTests.Budget.cs).
/// </summary>
[Collection(InProcessHangfire.Name)]
[Integration]
public sealed partial class TenantQuotaTests(TenantQuotaTests.QuotaServer lab) : IClassFixture<TenantQuotaTests.QuotaServer>
{
    [Fact]
    public async Task Sync_invokes_past_the_rate_get_429_with_Retry_After_naming_the_quota_and_are_recorded_refused()
    {
        using var r = lab.Client(QuotaServer.KeyR);
        for (var i = 0; i < 2; i++)
        {
            using var ok = await r.PostAsync("/api/functions/echo-r/invoke", new StringContent("x"));
            Assert.True(ok.StatusCode == HttpStatusCode.OK, await ok.Content.ReadAsStringAsync());
        }

        using var third = await r.PostAsync("/api/functions/echo-r/invoke", new StringContent("x"));

        var body = JsonDocument.Parse(await third.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
        Assert.Equal("InvocationsPerMinute", body.GetProperty("quota").GetString());
        var retryAfter = third.Headers.RetryAfter?.Delta ?? throw new InvalidOperationException("no Retry-After");
        Assert.InRange(retryAfter, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        Assert.True(third.Headers.ConnectionClose);

        // The refusal is an invocation of its own, refused, naming the quota.
        var id = third.Headers.GetValues("Pipelines-Invocation").Single();
        var recorded = await lab.EventuallyAsync(r, $"/api/functions/echo-r/invocations/{id}", i => i.GetProperty("status").GetString() == "refused");
        Assert.Equal(429, recorded.GetProperty("httpStatus").GetInt32());
        Assert.Contains("InvocationsPerMinute", recorded.GetProperty("error").GetString(), StringComparison.Ordinal);

        // Another tenant's rate is its own.
        using var c = lab.Client(QuotaServer.KeyC);
        using var other = await c.PostAsync("/api/functions/echo-c/invoke", new StringContent("x"));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task With_one_invocation_running_a_second_sync_one_gets_429_and_an_async_one_waits_then_succeeds()
    {
        using var c = lab.Client(QuotaServer.KeyC);
        var slow = c.PostAsync("/api/functions/slow-c/invoke", new StringContent("x"));
        await lab.EventuallyHeldAsync("lab-c", 1);

        using (var second = await c.PostAsync("/api/functions/slow-c/invoke", new StringContent("x")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), second.Headers.RetryAfter?.Delta);
            Assert.Contains("ConcurrentInvocations", await second.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var (url, held) = await lab.QueueUntilHeldAsync(c, "echo-c", "ConcurrentInvocations");
        Assert.Contains("ConcurrentInvocations", held.GetProperty("held").GetString(), StringComparison.Ordinal);

        using (var first = await slow)
        {
            Assert.Equal((HttpStatusCode.OK, "slow"), (first.StatusCode, await first.Content.ReadAsStringAsync()));
        }

        var done = await lab.EventuallyAsync(c, url, i => i.GetProperty("status").GetString() is not ("queued" or "running"));
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.False(done.TryGetProperty("held", out var after) && after.ValueKind == JsonValueKind.String);
    }

    [Fact]
    public async Task At_its_warm_containers_quota_a_tenants_other_function_gets_429_sync_and_waits_async_until_a_container_goes()
    {
        using var w = lab.Client(QuotaServer.KeyW);
        using (var first = await w.PostAsync("/api/functions/w1/invoke", new StringContent("x")))
        {
            Assert.Equal((HttpStatusCode.OK, "w1"), (first.StatusCode, await first.Content.ReadAsStringAsync()));
        }

        // w1's container stays warm (idle_timeout 5m) and holds the tenant's one slot.
        await lab.EventuallyHeldAsync("lab-w", 1, "warm");
        using (var refused = await w.PostAsync("/api/functions/w2/invoke", new StringContent("x")))
        {
            var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Equal("WarmContainers", problem.GetProperty("quota").GetString());
            Assert.Equal(TimeSpan.FromSeconds(5), refused.Headers.RetryAfter?.Delta);
            var id = refused.Headers.GetValues("Pipelines-Invocation").Single();
            var recorded = await lab.EventuallyAsync(w, $"/api/functions/w2/invocations/{id}", i => i.GetProperty("status").GetString() == "refused");
            Assert.Equal(429, recorded.GetProperty("httpStatus").GetInt32());
            Assert.Contains("quota WarmContainers", recorded.GetProperty("error").GetString(), StringComparison.Ordinal);
        }

        var (url, held) = await lab.QueueUntilHeldAsync(w, "w2", "WarmContainers");
        Assert.Contains("WarmContainers", held.GetProperty("held").GetString(), StringComparison.Ordinal);

        // w1 deleted, its container goes and gives the slot back: the waiting invocation runs.
        using (var delete = await w.DeleteAsync("/api/functions/w1"))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        }

        var done = await lab.EventuallyAsync(w, url, i => i.GetProperty("status").GetString() is not ("queued" or "running"));
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        await lab.EventuallyHeldAsync("lab-w", 1, "warm");

        // Killed, w2's container gives its slot back too.
        await lab.KillWarmAsync("function:lab-w/w2@1");
        await lab.EventuallyHeldAsync("lab-w", 0, "warm");
    }

    [Fact]
    public async Task A_min_warm_above_the_warm_containers_quota_starts_what_the_quota_allows_and_the_function_says_why_not_the_rest()
    {
        using var n = lab.Client(QuotaServer.KeyN);
        var function = await lab.EventuallyAsync(n, "/api/functions/m2", f => f.GetProperty("warm") is { ValueKind: JsonValueKind.Array } warm
            && warm.EnumerateArray().Any(v => v.GetProperty("warm").GetInt32() == 1 && v.TryGetProperty("held", out var h) && h.ValueKind == JsonValueKind.String));

        var view = function.GetProperty("warm").EnumerateArray().Single();
        Assert.Equal((1, 0), (view.GetProperty("warm").GetInt32(), view.GetProperty("starting").GetInt32()));
        Assert.Contains("quota WarmContainers", view.GetProperty("held").GetString(), StringComparison.Ordinal);
        await lab.EventuallyHeldAsync("lab-n", 1, "warm");

        // The one container serves the function's requests.
        using var invoked = await n.PostAsync("/api/functions/m2/invoke", new StringContent("x"));
        Assert.Equal((HttpStatusCode.OK, "m2"), (invoked.StatusCode, await invoked.Content.ReadAsStringAsync()));
    }

    [Fact]
    public async Task A_tenant_flooding_async_invocations_does_not_hold_back_another_tenants_few_and_every_one_runs()
    {
        using var f = lab.Client(QuotaServer.KeyF);
        using var g = lab.Client(QuotaServer.KeyG);
        var flood = new List<string>();
        for (var i = 0; i < 16; i++)
        {
            flood.Add(await QueueAsync(f, "/api/functions/flood-f/invoke?async=true"));
        }

        var few = new[] { await QueueAsync(g, "/api/functions/few-g/invoke?async=true"), await QueueAsync(g, "/api/functions/few-g/invoke?async=true") };
        foreach (var url in few)
        {
            var done = await lab.EventuallyAsync(g, url, i => i.GetProperty("status").GetString() is not ("queued" or "running"));
            Assert.Equal("succeeded", done.GetProperty("status").GetString());
        }

        // When lab-g's two have ended, lab-f's flood (16 of a second each, on two worker slots) has
        // not: first come, first served would have run lab-g's after all of them.
        var ended = 0;
        foreach (var url in flood)
        {
            using var response = await f.GetAsync(url);
            var status = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString();
            ended += status is "queued" or "running" ? 0 : 1;
        }

        Assert.True(ended < flood.Count, $"all {flood.Count} of lab-f's invocations had ended before lab-g's two");

        // Nothing dropped: the flood runs to its end.
        foreach (var url in flood)
        {
            var done = await lab.EventuallyAsync(f, url, i => i.GetProperty("status").GetString() is not ("queued" or "running"));
            Assert.Equal("succeeded", done.GetProperty("status").GetString());
        }

        static async Task<string> QueueAsync(HttpClient http, string path)
        {
            using var queued = await http.PostAsync(path, new StringContent("x"));
            Assert.Equal(HttpStatusCode.Accepted, queued.StatusCode);
            return queued.Headers.Location!.OriginalString;
        }
    }

    [Fact]
    public async Task An_async_invocation_waiting_for_a_worker_slot_says_so_in_held_and_runs_when_one_frees()
    {
        // Six invocations of four seconds on two slots (and a prefetch of two): the look releases four, two wait.
        using var s = lab.Client(QuotaServer.KeyS);
        var urls = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            using var queued = await s.PostAsync("/api/functions/slow-s/invoke?async=true", new StringContent("x"));
            Assert.Equal(HttpStatusCode.Accepted, queued.StatusCode);
            urls.Add(queued.Headers.Location!.OriginalString);
        }

        var waiting = await EventuallyAnyAsync(s, urls, i => i.GetProperty("status").GetString() == "queued"
            && i.TryGetProperty("held", out var h) && h.ValueKind == JsonValueKind.String);
        Assert.Matches(@"^waiting for a worker slot: the \d+ slots the workers offer are taken by tasks and invocations in flight; released by fair share as they free up$", waiting.GetProperty("held").GetString());

        // Every one runs; once released, the wait's words are gone.
        foreach (var url in urls)
        {
            var done = await lab.EventuallyAsync(s, url, i => i.GetProperty("status").GetString() is not ("queued" or "running"));
            Assert.Equal("succeeded", done.GetProperty("status").GetString());
            Assert.False(done.TryGetProperty("held", out var after) && after.ValueKind == JsonValueKind.String, done.ToString());
        }

        async Task<JsonElement> EventuallyAnyAsync(HttpClient http, IReadOnlyList<string> paths, Func<JsonElement, bool> done)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (true)
            {
                foreach (var path in paths)
                {
                    var element = JsonDocument.Parse(await http.GetStringAsync(path, cts.Token)).RootElement;
                    if (done(element))
                    {
                        return element;
                    }
                }

                await Task.Delay(100, cts.Token);
            }
        }
    }

    [Fact]
    public async Task A_run_or_a_deploy_asking_for_more_memory_than_the_tenants_quota_is_refused_naming_the_field()
    {
        using var c = lab.Client(QuotaServer.KeyC);
        var workflow = $$"""
            version: 1
            name: big
            input:
              uri: s3://{{lab.Bucket}}/lab-c/raw/
            steps:
              - name: look
                image: pipelines-samples/pair-check:1
                command: ["busybox", "true"]
                resources: {memory: 2Gi}
            output:
              uri: s3://{{lab.Bucket}}/lab-c/out/
            """;

        using var run = await c.PostAsync("/api/runs", new StringContent(JsonSerializer.Serialize(new { workflow }), Encoding.UTF8, "application/json"));
        var runBody = await run.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, run.StatusCode);
        Assert.Contains("steps[0].resources.memory: 2Gi is over this tenant's limit of 1Gi (quota MaxMemory)", runBody, StringComparison.Ordinal);

        using var deploy = await c.PostAsync("/api/functions", new StringContent(QuotaServer.Function("big-c", "x") + "resources: {memory: 2Gi}\n", Encoding.UTF8, "application/yaml"));
        var deployBody = await deploy.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, deploy.StatusCode);
        Assert.Contains("resources.memory: 2Gi is over this tenant's limit of 1Gi (quota MaxMemory)", deployBody, StringComparison.Ordinal);
        using var missing = await c.GetAsync("/api/functions/big-c");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task A_push_past_the_tenants_stored_bytes_is_refused_413_naming_the_quota_and_its_tarball_is_not_kept()
    {
        using var c = lab.Client(QuotaServer.KeyC);
        var tar = await lab.SavedImageAsync();

        await using var body = File.OpenRead(tar);
        var content = new StreamContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-tar");
        using var push = await c.PostAsync("/api/algorithms/seg-c/versions/1", content);

        var problem = JsonDocument.Parse(await push.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, push.StatusCode);
        Assert.Equal("StoredBytes", problem.GetProperty("quota").GetString());
        Assert.Contains("over its quota StoredBytes of 1Ki", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        using var missing = await c.GetAsync("/api/algorithms/seg-c");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Empty(await lab.KeysAsync("algorithms/"));
    }

    /// <summary>The server (api, dashboard and worker roles, in this process) and each tenant's functions.</summary>
    public sealed class QuotaServer : IAsyncLifetime
    {
        public const string KeyR = "lab-r-full-key-0123456789";
        public const string KeyC = "lab-c-full-key-9876543210";
        public const string KeyW = "lab-w-full-key-5555555555";
        public const string KeyN = "lab-n-full-key-7777777777";
        public const string KeyF = "lab-f-full-key-1111111111";
        public const string KeyG = "lab-g-full-key-2222222222";
        public const string KeyM = "lab-m-full-key-5555566666";
        public const string KeyZ = "lab-z-full-key-0000000000";
        public const string KeyS = "lab-s-full-key-3333333333";
        private const string Image = "pipelines-samples/pair-check:1";
        private readonly string _schema = TestEnvironment.NewName("quo_");
        private readonly string _warmRoot = Path.Combine("/tmp", "tq-" + Guid.NewGuid().ToString("N")[..8]);
        private readonly TempFolder _temp = new();

        /// <summary>The server's configuration file: lab-m's budget, the part an operator edits while it runs.</summary>
        private string ConfigFile => _temp.Combine("pipelines.json");
        private readonly ObjectStoreFactory _stores = new(TestEnvironment.S3);
        private readonly TestImages _images = new();
        private WebApplication _server = null!;
        private string _url = null!;
        private Dictionary<string, string?> _config = null!;

        public string Bucket { get; private set; } = null!;

        /// <summary>A function that answers <paramref name="answer"/> after <paramref name="seconds"/>.</summary>
        public static string Function(string name, string answer, int seconds = 0) => $"""
            name: {name}
            image: {Image}
            command: ["busybox", "sh", "-c", "sleep {seconds}; printf {answer} > /out/answer"]

            """;

        public HttpClient Client(string key)
        {
            var http = new HttpClient { BaseAddress = new Uri(_url), Timeout = TimeSpan.FromSeconds(90) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return http;
        }

        /// <summary>
        /// Invokes <paramref name="function"/> async (202, its invocation's URL) and reads the invocation
        /// until it is held by <paramref name="by"/>: still queued, with a held text naming it (before
        /// its release it may say first that it waits for a worker slot). Returns the URL and what was read.
        /// </summary>
        public async Task<(string Url, JsonElement Invocation)> QueueUntilHeldAsync(HttpClient http, string function, string by)
        {
            string url;
            using (var queued = await http.PostAsync($"/api/functions/{function}/invoke?async=true", new StringContent("x")))
            {
                Assert.Equal(HttpStatusCode.Accepted, queued.StatusCode);
                url = queued.Headers.Location!.OriginalString;
            }

            var held = await EventuallyAsync(http, url, i => i.TryGetProperty("held", out var h) && h.ValueKind == JsonValueKind.String && h.GetString()!.Contains(by, StringComparison.Ordinal));
            Assert.Equal("queued", held.GetProperty("status").GetString());
            return (url, held);
        }

        /// <summary>Reads <paramref name="path"/> until <paramref name="done"/> holds (a minute at most).</summary>
        public async Task<JsonElement> EventuallyAsync(HttpClient http, string path, Func<JsonElement, bool> done)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (true)
            {
                using (var response = await http.GetAsync(path, cts.Token))
                {
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        var element = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cts.Token)).RootElement;
                        if (done(element))
                        {
                            return element;
                        }
                    }
                }

                await Task.Delay(100, cts.Token);
            }
        }

        /// <summary>Waits until <paramref name="tenant"/> holds <paramref name="count"/> slots of <paramref name="kind"/> (running invocations, or warm containers: its slots in PostgreSQL).</summary>
        public async Task EventuallyHeldAsync(string tenant, int count, string kind = "invocations")
        {
            await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (true)
            {
                await using (var cmd = db.CreateCommand($"SELECT count(*) FROM {_schema}.tenant_holders WHERE tenant = @t AND kind = @kind"))
                {
                    cmd.Parameters.AddWithValue("t", tenant);
                    cmd.Parameters.AddWithValue("kind", kind);
                    if ((long)(await cmd.ExecuteScalarAsync(cts.Token))! == count)
                    {
                        return;
                    }
                }

                await Task.Delay(50, cts.Token);
            }
        }

        /// <summary>Kills (as a crash would) the running warm containers of <paramref name="owner"/> this server started.</summary>
        public async Task KillWarmAsync(string owner)
        {
            var containers = (await _images.Client.Containers.ListContainersAsync(new ContainersListParameters
            {
                Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{DockerWarmPool.WarmOwnerLabel}={owner}"] = true } },
            })).Where(c => c.Mounts.Any(mount => mount.Source.StartsWith(_warmRoot, StringComparison.Ordinal))).ToList();
            Assert.NotEmpty(containers);
            foreach (var container in containers)
            {
                await _images.Client.Containers.KillContainerAsync(container.ID, new ContainerKillParameters { Signal = "KILL" });
            }
        }

        /// <summary>A new image, saved as a tarball to push.</summary>
        public async Task<string> SavedImageAsync()
        {
            var image = await _images.NewAsync();
            var tar = _temp.Combine(Guid.NewGuid().ToString("N")[..8] + ".tar");
            await using var file = File.Create(tar);
            await using var saved = await _images.Client.Images.SaveImageAsync(image, CancellationToken.None);
            await saved.CopyToAsync(file);
            return tar;
        }

        /// <summary>The bucket's keys under <paramref name="prefix"/>.</summary>
        public async Task<IReadOnlyList<string>> KeysAsync(string prefix)
        {
            var listed = await _stores.S3Client.ListObjectsV2Async(new Amazon.S3.Model.ListObjectsV2Request { BucketName = Bucket, Prefix = prefix });
            return (listed.S3Objects ?? []).Select(o => o.Key).ToList();
        }

        public async Task InitializeAsync()
        {
            Bucket = await TestEnvironment.NewBucketAsync(_stores.S3Client);
            _url = $"http://127.0.0.1:{ServerProcess.FreePort()}";
            _config = new Dictionary<string, string?>
            {
                ["Postgres"] = TestEnvironment.Postgres,
                ["Schema"] = _schema,
                ["Hangfire:Schema"] = _schema + "_hangfire",
                ["Server:Roles"] = "api,dashboard,worker",
                ["Server:Bucket"] = Bucket,
                ["Worker:Concurrency"] = "2",
                ["Docker:WarmRoot"] = _warmRoot,
                ["Docker:WarmHelper"] = Path.Combine(TestEnvironment.RepoRoot, ".build", "native", "warm-helper"),
                ["Worker:Scratch"] = _temp.Combine("scratch"),
                ["Functions:Output"] = $"s3://{Bucket}/functions/",
                ["Algorithms:Store"] = $"s3://{Bucket}/algorithms/",
                ["Algorithms:Scratch"] = _temp.Combine("algorithms"),
                ["Tenants:lab-r:Output"] = $"s3://{Bucket}/lab-r/",
                ["Tenants:lab-r:Quotas:InvocationsPerMinute"] = "2",
                ["Tenants:lab-c:Output"] = $"s3://{Bucket}/lab-c/",
                ["Tenants:lab-c:Quotas:ConcurrentInvocations"] = "1",
                ["Tenants:lab-c:Quotas:MaxMemory"] = "1Gi",
                ["Tenants:lab-c:Quotas:StoredBytes"] = "1Ki",
                ["Tenants:lab-w:Output"] = $"s3://{Bucket}/lab-w/",
                ["Tenants:lab-w:Quotas:WarmContainers"] = "1",
                ["Tenants:lab-n:Output"] = $"s3://{Bucket}/lab-n/",
                ["Tenants:lab-n:Quotas:WarmContainers"] = "1",
                ["Server:Keys:6:Key"] = KeyW,
                ["Server:Keys:6:Role"] = "full",
                ["Server:Keys:6:Tenant"] = "lab-w",
                ["Server:Keys:3:Key"] = KeyN,
                ["Server:Keys:3:Role"] = "full",
                ["Server:Keys:3:Tenant"] = "lab-n",
                ["Tenants:lab-f:Output"] = $"s3://{Bucket}/lab-f/",
                ["Tenants:lab-g:Output"] = $"s3://{Bucket}/lab-g/",
                ["Server:Keys:4:Key"] = KeyF,
                ["Server:Keys:4:Role"] = "full",
                ["Server:Keys:4:Tenant"] = "lab-f",
                ["Server:Keys:5:Key"] = KeyG,
                ["Server:Keys:5:Role"] = "full",
                ["Server:Keys:5:Tenant"] = "lab-g",
                ["Server:Keys:0:Key"] = KeyR,
                ["Server:Keys:0:Role"] = "full",
                ["Server:Keys:0:Tenant"] = "lab-r",
                ["Server:Keys:1:Key"] = KeyC,
                ["Server:Keys:1:Role"] = "full",
                ["Server:Keys:1:Tenant"] = "lab-c",
                ["Tenants:lab-m:Output"] = $"s3://{Bucket}/lab-m/",
                ["Tenants:lab-m:Prices:CpuSecond"] = "1",
                ["Tenants:lab-m:Prices:GbSecond"] = "1",
                ["Tenants:lab-m:Prices:Currency"] = "CR",
                ["Server:Keys:2:Key"] = KeyM,
                ["Server:Keys:2:Role"] = "full",
                ["Server:Keys:2:Tenant"] = "lab-m",
                ["Tenants:lab-z:Output"] = $"s3://{Bucket}/lab-z/",
                ["Tenants:lab-z:Prices:Invocation"] = "1",
                ["Tenants:lab-z:Prices:Currency"] = "CR",
                ["Tenants:lab-z:Budget:Amount"] = "0",
                ["Server:Keys:7:Key"] = KeyZ,
                ["Server:Keys:7:Role"] = "full",
                ["Server:Keys:7:Tenant"] = "lab-z",
                ["Tenants:lab-s:Output"] = $"s3://{Bucket}/lab-s/",
                ["Server:Keys:8:Key"] = KeyS,
                ["Server:Keys:8:Role"] = "full",
                ["Server:Keys:8:Tenant"] = "lab-s",
            };
            // lab-m's budget is in a configuration file, as an operator keeps it, read again when it changes.
            await File.WriteAllTextAsync(ConfigFile, """{"Tenants": {"lab-m": {"Budget": {"Amount": "0.000001"}}}}""");
            _server = PipelinesServer.Build(Pipelines.Hosting.EngineHost.Configuration(ConfigFile, _config, reloadOnChange: true), _url, LogLevel.Warning);
            await _server.StartAsync();

            using var r = Client(KeyR);
            using var c = Client(KeyC);
            await DeployAsync(r, Function("echo-r", "r"));
            await DeployAsync(c, Function("echo-c", "c"));
            await DeployAsync(c, Function("slow-c", "slow", seconds: 3));
            using var w = Client(KeyW);
            using var n = Client(KeyN);
            await DeployAsync(w, Function("w1", "w1"));
            await DeployAsync(w, Function("w2", "w2"));
            await DeployAsync(n, Function("m2", "m2") + "min_warm: 2\nmax: 2\n");
            using var f = Client(KeyF);
            using var g = Client(KeyG);
            await DeployAsync(f, Function("flood-f", "f", seconds: 1));
            await DeployAsync(g, Function("few-g", "g", seconds: 1));
            using var m = Client(KeyM);
            await DeployAsync(m, Function("echo-m", "m"));
            using var z = Client(KeyZ);
            await DeployAsync(z, Function("echo-z", "z"));
            using var slow = Client(KeyS);
            await DeployAsync(slow, Function("slow-s", "s", seconds: 4));
        }

        /// <summary>The server's URL, for the CLI.</summary>
        public string Url => _url;

        /// <summary>Writes lab-m's budget into the running server's configuration file, as an operator raises it (no restart).</summary>
        public Task SetBudgetOfLabMAsync(string amount) =>
            File.WriteAllTextAsync(ConfigFile, """{"Tenants": {"lab-m": {"Budget": {"Amount": "AMOUNT"}}}}""".Replace("AMOUNT", amount, StringComparison.Ordinal));

        /// <summary>Puts a small file at <paramref name="key"/> of the bucket.</summary>
        public async Task PutAsync(string key, string text)
        {
            var location = _stores.Open($"s3://{Bucket}/");
            await location.Store.PutAsync(location.Key(key), Encoding.UTF8.GetBytes(text), "text/plain", CancellationToken.None);
        }

        private static async Task DeployAsync(HttpClient http, string yaml)
        {
            using var response = await http.PostAsync("/api/functions", new StringContent(yaml, Encoding.UTF8, "application/yaml"));
            Assert.True(response.StatusCode == HttpStatusCode.Created, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        public async Task DisposeAsync()
        {
            await _server.StopAsync();
            await _server.DisposeAsync();
            await _images.DisposeAsync();
            await using (var db = NpgsqlDataSource.Create(TestEnvironment.Postgres))
            await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
            {
                await cmd.ExecuteNonQueryAsync();
            }

            _stores.Dispose();
            _temp.Dispose();
        }
    }
}
