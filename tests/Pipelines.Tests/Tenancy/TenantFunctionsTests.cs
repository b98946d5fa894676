using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Amazon.S3.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pipelines.Server;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Tenancy;

/// <summary>
/// Functions and algorithms of two tenants on one real server (in this process, PostgreSQL, S3, Docker):
/// lab-b deploys a function, invokes it (once now, once queued) and pushes an algorithm; lab-a's key finds
/// none of it: every answer about lab-b's objects is, byte for byte, the answer about a missing one.
/// </summary>
[Collection(InProcessHangfire.Name)]
[Integration]
public sealed class TenantFunctionsTests(TenantFunctionsTests.TwoTenants lab) : IClassFixture<TenantFunctionsTests.TwoTenants>
{
    private const string MissingId = "0000000000007000800000000000beef";

    [Fact]
    public async Task Lab_as_key_on_lab_bs_function_invocations_and_algorithm_gets_what_it_gets_for_missing_ones()
    {
        using var a = lab.Client(TwoTenants.KeyA);
        (string Method, string Path, string Missing, string? Body)[] calls =
        [
            ("GET", "/api/functions/echo-b", "/api/functions/nope-b", null),
            ("GET", "/api/functions/echo-b?window=5m", "/api/functions/nope-b?window=5m", null),
            ("GET", "/api/functions/echo-b/invocations", "/api/functions/nope-b/invocations", null),
            ("GET", $"/api/functions/echo-b/invocations/{lab.SyncId}", $"/api/functions/echo-b/invocations/{MissingId}", null),
            ("GET", $"/api/functions/echo-b/invocations/{lab.AsyncId}", $"/api/functions/echo-b/invocations/{MissingId}", null),
            ("GET", $"/api/functions/echo-b/invocations/{lab.AsyncId}/output", $"/api/functions/echo-b/invocations/{MissingId}/output", null),
            ("POST", "/api/functions/echo-b/invoke", "/api/functions/nope-b/invoke", "hello"),
            ("POST", "/api/functions/echo-b/invoke?async=true", "/api/functions/nope-b/invoke?async=true", "hello"),
            ("DELETE", "/api/functions/echo-b", "/api/functions/nope-b", null),
            ("GET", "/api/algorithms/seg-b", "/api/algorithms/nope-b", null),
            ("POST", "/api/algorithms/seg-b/canary/1?percent=50", "/api/algorithms/nope-b/canary/1?percent=50", null),
            ("POST", "/api/algorithms/seg-b/promote/1", "/api/algorithms/nope-b/promote/1", null),
            ("POST", "/api/algorithms/seg-b/abort", "/api/algorithms/nope-b/abort", null),
            ("DELETE", "/api/algorithms/seg-b/versions/1", "/api/algorithms/nope-b/versions/1", null),
        ];

        foreach (var (method, path, missing, body) in calls)
        {
            var foreign = await AnswerAsync(a, method, path, body);
            var absent = await AnswerAsync(a, method, missing, body);

            Assert.True(foreign.Status is HttpStatusCode.NotFound or HttpStatusCode.UnprocessableEntity, $"{method} {path}: {foreign.Status} {foreign.Body}");
            Assert.Equal((absent.Status, Unname(absent.Body, missing, path)), (foreign.Status, foreign.Body));
        }

        // None of it was touched: lab-b still has its function, invocations and algorithm as they were.
        using var b = lab.Client(TwoTenants.KeyB);
        foreach (var path in new[] { "/api/functions/echo-b", $"/api/functions/echo-b/invocations/{lab.SyncId}", $"/api/functions/echo-b/invocations/{lab.AsyncId}" })
        {
            Assert.Equal(HttpStatusCode.OK, (await AnswerAsync(b, "GET", path, null)).Status);
        }

        var algorithm = JsonDocument.Parse((await AnswerAsync(b, "GET", "/api/algorithms/seg-b", null)).Body).RootElement;
        Assert.Equal(["stable"], algorithm.GetProperty("channels").EnumerateArray().Select(c => c.GetProperty("channel").GetString()));
        Assert.Equal("lab-b", algorithm.GetProperty("tenant").GetString());
    }

    [Fact]
    public async Task Listings_and_pages_of_lab_a_leave_out_lab_bs_functions_algorithms_and_loads()
    {
        using var a = lab.Client(TwoTenants.KeyA);
        using var b = lab.Client(TwoTenants.KeyB);

        foreach (var path in new[] { "/api/functions", "/api/algorithms", "/api/algorithms/loads", "/hangfire/functions", "/hangfire/algorithms" })
        {
            var theirs = await AnswerAsync(b, "GET", path, null);
            var mine = await AnswerAsync(a, "GET", path, null);

            Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (theirs.Status, mine.Status));
            foreach (var name in new[] { "echo-b", "seg-b", "by-digest-b", lab.Digest })
            {
                Assert.DoesNotContain(name, mine.Body, StringComparison.Ordinal);
            }

            if (!path.Contains("loads", StringComparison.Ordinal))
            {
                Assert.Contains(path.Contains("algorithms", StringComparison.Ordinal) ? "seg-b" : "echo-b", theirs.Body, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task Two_tenants_each_have_a_function_of_one_name_and_each_invokes_its_own()
    {
        using var a = lab.Client(TwoTenants.KeyA);
        using var b = lab.Client(TwoTenants.KeyB);
        Assert.Equal(HttpStatusCode.Created, (await AnswerAsync(a, "POST", "/api/functions", TwoTenants.Echo("same", "A"))).Status);
        Assert.Equal(HttpStatusCode.Created, (await AnswerAsync(b, "POST", "/api/functions", TwoTenants.Echo("same", "B"))).Status);

        var fromA = await AnswerAsync(a, "POST", "/api/functions/same/invoke", "x");
        var fromB = await AnswerAsync(b, "POST", "/api/functions/same/invoke", "x");

        Assert.Equal((HttpStatusCode.OK, "A"), (fromA.Status, fromA.Body));
        Assert.Equal((HttpStatusCode.OK, "B"), (fromB.Status, fromB.Body));
        Assert.Equal(HttpStatusCode.NoContent, (await AnswerAsync(a, "DELETE", "/api/functions/same", null)).Status);
        Assert.Equal(HttpStatusCode.OK, (await AnswerAsync(b, "GET", "/api/functions/same", null)).Status);
    }

    [Fact]
    public async Task A_deploy_or_a_run_of_lab_a_naming_lab_bs_pushed_image_is_refused_as_an_image_that_is_not_there()
    {
        using var a = lab.Client(TwoTenants.KeyA);
        var missing = "pipelines-tests/no-such-image:" + Guid.NewGuid().ToString("N")[..8];

        var deploy = await AnswerAsync(a, "POST", "/api/functions", TwoTenants.Echo("stolen", "x", lab.Digest));
        var deployMissing = await AnswerAsync(a, "POST", "/api/functions", TwoTenants.Echo("stolen", "x", missing));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, deploy.Status);
        Assert.Contains("is not on the Docker engine", deploy.Body, StringComparison.Ordinal);
        Assert.Equal((deployMissing.Status, deployMissing.Body.Replace(missing, lab.Digest, StringComparison.Ordinal)), (deploy.Status, deploy.Body));

        var run = await AnswerAsync(a, "POST", "/api/runs", JsonSerializer.Serialize(new { workflow = lab.Workflow(lab.Digest) }), json: true);
        var runMissing = await AnswerAsync(a, "POST", "/api/runs", JsonSerializer.Serialize(new { workflow = lab.Workflow(missing) }), json: true);
        Assert.True(run.Status is >= HttpStatusCode.BadRequest and < HttpStatusCode.InternalServerError, $"{run.Status} {run.Body}");
        Assert.Contains("is not on the Docker engine", run.Body, StringComparison.Ordinal);
        Assert.Equal((runMissing.Status, runMissing.Body.Replace(missing, lab.Digest, StringComparison.Ordinal)), (run.Status, run.Body));

        // lab-b deploys its own image by digest.
        using var b = lab.Client(TwoTenants.KeyB);
        Assert.Equal(HttpStatusCode.Created, (await AnswerAsync(b, "POST", "/api/functions", TwoTenants.Echo("by-digest-b", "x", lab.Digest))).Status);
    }

    [Fact]
    public void An_async_invocation_of_lab_b_keeps_its_input_under_lab_bs_own_output_folder()
    {
        Assert.Contains($"lab-b/functions/echo-b/{lab.AsyncId}/input.json", lab.KeysAtStart);
        Assert.DoesNotContain(lab.KeysAtStart, k => k.StartsWith("functions/", StringComparison.Ordinal));
    }

    private static string Unname(string body, string missingPath, string foreignPath)
    {
        // The missing call's answer with the missing name (or id) put back as the foreign call's.
        var pairs = Segments(missingPath).Zip(Segments(foreignPath)).Where(p => p.First != p.Second);
        return pairs.Aggregate(body, (text, p) => text.Replace(p.First, p.Second, StringComparison.Ordinal));

        static string[] Segments(string path) => path.Split('?')[0].Split('/');
    }

    private static async Task<(HttpStatusCode Status, string Body)> AnswerAsync(HttpClient http, string method, string path, string? body, bool json = false)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, json ? "application/json" : "application/yaml");
        }

        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, WithoutTraceId(text));
    }

    /// <summary>A problem's traceId differs per request; nothing else may.</summary>
    private static string WithoutTraceId(string text)
    {
        if (!text.StartsWith('{'))
        {
            return text;
        }

        var node = JsonNode.Parse(text)!.AsObject();
        node.Remove("traceId");
        return node.ToJsonString();
    }

    /// <summary>
    /// The server (api role, in this process, with an internal switch past the guard that still refuses
    /// tenants to every other caller) and lab-b's function, invocations and pushed algorithm.
    /// </summary>
    public sealed class TwoTenants : IAsyncLifetime
    {
        public const string KeyA = "lab-a-full-key-0123456789";
        public const string KeyB = "lab-b-full-key-9876543210";
        private const string Image = "pipelines-samples/pair-check:1";
        private readonly string _schema = TestEnvironment.NewName("ten_");
        private readonly string _warmRoot = Path.Combine("/tmp", "tw-" + Guid.NewGuid().ToString("N")[..8]);
        private readonly TempFolder _temp = new();
        private readonly TestImages _images = new();
        private readonly ObjectStoreFactory _stores = new(TestEnvironment.S3);
        private WebApplication _server = null!;
        private string _url = null!;

        public string Bucket { get; private set; } = null!;

        public string SyncId { get; private set; } = null!;

        public string AsyncId { get; private set; } = null!;

        /// <summary>The image lab-b pushed as seg-b@1.</summary>
        public string Digest { get; private set; } = null!;

        /// <summary>The bucket's keys once lab-b's invocations were made.</summary>
        public IReadOnlyList<string> KeysAtStart { get; private set; } = [];

        /// <summary>A function that answers <paramref name="answer"/> to every request.</summary>
        public static string Echo(string name, string answer, string image = Image) => $"""
            name: {name}
            image: {image}
            command: ["busybox", "sh", "-c", "printf {answer} > /out/answer"]
            """;

        public string Workflow(string image) => $$"""
            version: 1
            name: stolen
            input:
              uri: s3://{{Bucket}}/lab-a/raw/
              include: ["*.fastq"]
            steps:
              - name: look
                image: {{image}}
                command: ["busybox", "true"]
                outputs: ["*.tsv"]
            output:
              uri: s3://{{Bucket}}/lab-a/out/
            """;

        public HttpClient Client(string key)
        {
            var http = new HttpClient { BaseAddress = new Uri(_url), Timeout = TimeSpan.FromSeconds(90) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return http;
        }

        public async Task InitializeAsync()
        {
            Bucket = await TestEnvironment.NewBucketAsync(_stores.S3Client);
            _url = $"http://127.0.0.1:{ServerProcess.FreePort()}";
            var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Postgres"] = TestEnvironment.Postgres,
                ["Schema"] = _schema,
                ["Hangfire:Schema"] = _schema + "_hangfire",
                ["Server:Roles"] = "api,dashboard",
                ["Server:Bucket"] = Bucket,
                ["Docker:WarmRoot"] = _warmRoot,
                ["Docker:WarmHelper"] = Path.Combine(TestEnvironment.RepoRoot, ".build", "native", "warm-helper"),
                ["Worker:Scratch"] = _temp.Combine("scratch"),
                ["Functions:Output"] = $"s3://{Bucket}/functions/",
                ["Algorithms:Store"] = $"s3://{Bucket}/algorithms/",
                ["Algorithms:Scratch"] = _temp.Combine("algorithms"),
                ["Tenants:lab-a:Output"] = $"s3://{Bucket}/lab-a/",
                ["Tenants:lab-b:Output"] = $"s3://{Bucket}/lab-b/",
                ["Server:Keys:0:Key"] = KeyA,
                ["Server:Keys:0:Role"] = "full",
                ["Server:Keys:0:Name"] = "alice",
                ["Server:Keys:0:Tenant"] = "lab-a",
                ["Server:Keys:1:Key"] = KeyB,
                ["Server:Keys:1:Role"] = "full",
                ["Server:Keys:1:Name"] = "bob",
                ["Server:Keys:1:Tenant"] = "lab-b",
            }).Build();
            _server = PipelinesServer.Build(config, _url, LogLevel.Warning);
            await _server.StartAsync();

            using var b = Client(KeyB);
            await ExpectAsync(HttpStatusCode.Created, b.PostAsync("/api/functions", new StringContent(Echo("echo-b", "from-b"), Encoding.UTF8, "application/yaml")));
            using (var sync = await b.PostAsync("/api/functions/echo-b/invoke", new StringContent("x")))
            {
                var answer = await sync.Content.ReadAsStringAsync();
                Assert.True(answer == "from-b", answer);
                SyncId = sync.Headers.GetValues("Pipelines-Invocation").Single();
            }

            using (var queued = await b.PostAsync("/api/functions/echo-b/invoke?async=true", new StringContent("x")))
            {
                Assert.Equal(HttpStatusCode.Accepted, queued.StatusCode);
                AsyncId = JsonDocument.Parse(await queued.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
            }

            var image = await _images.NewAsync();
            Digest = await _images.IdOfAsync(image);
            var tar = _temp.Combine("seg.tar");
            await using (var file = File.Create(tar))
            await using (var saved = await _images.Client.Images.SaveImageAsync(image, CancellationToken.None))
            {
                await saved.CopyToAsync(file);
            }

            await using (var body = File.OpenRead(tar))
            {
                var content = new StreamContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/x-tar");
                await ExpectAsync(HttpStatusCode.Created, b.PostAsync("/api/algorithms/seg-b/versions/1", content));
            }

            var listed = await _stores.S3Client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = Bucket });
            KeysAtStart = listed.S3Objects.Select(o => o.Key).ToList();
        }

        private static async Task ExpectAsync(HttpStatusCode status, Task<HttpResponseMessage> call)
        {
            using var response = await call;
            Assert.True(response.StatusCode == status, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
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
