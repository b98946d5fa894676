using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>
/// A server with two tenants, lab-a and lab-b, each with its own folders in the fixture's bucket
/// (lab-a reads raw/lane1/, lab-b raw/lane2/), a read and a full key of lab-a, a full key of lab-b,
/// and an admin key. lab-b owns a run that has ended (over raw/lane2/, into lab-b/out/), a
/// registered trigger, a function with a sync and an async invocation, and an algorithm with two
/// versions and a canary, so that a test can ask for each with lab-a's keys.
/// </summary>
public sealed class TenantServerFixture : ServerFixture, IAsyncLifetime
{
    public const string LabARead = "lab-a-read-0123456789abcdef";
    public const string LabAFull = "lab-a-full-0123456789abcdef";
    public const string LabBFull = "lab-b-full-0123456789abcdef";
    public const string Admin = "admin-key-0123456789abcdef";

    /// <summary>The workflow lab-b registered with a trigger.</summary>
    public const string LabBWorkflow = "fastq-stats-triggered";

    /// <summary>lab-b's function, deployed and invoked.</summary>
    public const string LabBFunction = "echo-b";

    /// <summary>lab-b's algorithm: versions 1 (stable) and 2 (the canary).</summary>
    public const string LabBAlgorithm = "seg-b";

    private readonly string _warmRoot = Path.Combine("/tmp", "tsw-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>lab-b's run, ended.</summary>
    public string LabBRun { get; private set; } = null!;

    /// <summary>lab-b's sync invocation of <see cref="LabBFunction"/>.</summary>
    public string LabBSyncInvocation { get; private set; } = null!;

    /// <summary>lab-b's async invocation of <see cref="LabBFunction"/>, ended.</summary>
    public string LabBAsyncInvocation { get; private set; } = null!;

    /// <summary>The image id lab-b pushed as <see cref="LabBAlgorithm"/>.</summary>
    public string LabBDigest { get; private set; } = null!;

    public TestImages Images { get; } = new();

    protected override IReadOnlyDictionary<string, string?> MoreEnv => new Dictionary<string, string?>
    {
        ["PIPELINES_Algorithms__Store"] = $"s3://{Bucket}/algorithms/",
        ["PIPELINES_Docker__WarmRoot"] = _warmRoot,
        ["PIPELINES_Tenants__lab-a__Output"] = $"s3://{Bucket}/lab-a/",
        ["PIPELINES_Tenants__lab-a__Inputs__0"] = $"s3://{Bucket}/raw/lane1/",
        ["PIPELINES_Tenants__lab-b__Output"] = $"s3://{Bucket}/lab-b/",
        ["PIPELINES_Tenants__lab-b__Inputs__0"] = $"s3://{Bucket}/raw/lane2/",
        ["PIPELINES_Server__Keys__0__Key"] = LabARead,
        ["PIPELINES_Server__Keys__0__Role"] = "read",
        ["PIPELINES_Server__Keys__0__Tenant"] = "lab-a",
        ["PIPELINES_Server__Keys__0__Name"] = "a-viewer",
        ["PIPELINES_Server__Keys__1__Key"] = LabAFull,
        ["PIPELINES_Server__Keys__1__Role"] = "full",
        ["PIPELINES_Server__Keys__1__Tenant"] = "lab-a",
        ["PIPELINES_Server__Keys__1__Name"] = "a-operator",
        ["PIPELINES_Server__Keys__2__Key"] = LabBFull,
        ["PIPELINES_Server__Keys__2__Role"] = "full",
        ["PIPELINES_Server__Keys__2__Tenant"] = "lab-b",
        ["PIPELINES_Server__Keys__2__Name"] = "b-operator",
        ["PIPELINES_Server__Keys__3__Key"] = Admin,
        ["PIPELINES_Server__Keys__3__Role"] = "admin",
        ["PIPELINES_Server__Keys__3__Name"] = "root",
    };

    /// <summary>The sample workflow over one lane, writing under a prefix: of lab-a (lane1, lab-a/...) or lab-b (lane2, lab-b/...).</summary>
    public string LaneWorkflow(int lane, string output) => StatsWorkflow
        .Replace($"s3://{Bucket}/raw/", $"s3://{Bucket}/raw/lane{lane}/", StringComparison.Ordinal)
        .Replace($"s3://{Bucket}/results/", output, StringComparison.Ordinal);

    /// <summary>A client that presents <paramref name="key"/> (none: no header).</summary>
    public HttpClient As(string? key)
    {
        var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(Server.Url) };
        if (key is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return http;
    }

    public new async Task InitializeAsync()
    {
        await base.InitializeAsync();
        using var b = As(LabBFull);
        LabBRun = await SubmitAsync(b, LaneWorkflow(2, $"s3://{Bucket}/lab-b/out/"));
        await WaitForAsync(b, LabBRun, r => r.GetProperty("state").GetString() is "succeeded" or "failed" or "cancelled", TimeSpan.FromMinutes(3));

        var triggered = File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "workflows", "fastq-stats-triggered.yaml"));
        string[] set =
        [
            $"input.uri=s3://{Bucket}/lab-b/incoming/", $"trigger.uri=s3://{Bucket}/lab-b/incoming/", $"output.uri=s3://{Bucket}/lab-b/triggered/",
        ];
        using (var registered = await b.PostAsJsonAsync("/api/workflows", new { workflow = triggered, set }))
        {
            Assert.True(registered.IsSuccessStatusCode, $"{(int)registered.StatusCode}: {await registered.Content.ReadAsStringAsync()}");
        }

        await ExpectAsync(HttpStatusCode.Created, b.PostAsync("/api/functions", new StringContent(Echo(LabBFunction, "from-b"), Encoding.UTF8, "application/yaml")));
        using (var sync = await b.PostAsync($"/api/functions/{LabBFunction}/invoke", new StringContent("x")))
        {
            Assert.True(sync.StatusCode == HttpStatusCode.OK, await sync.Content.ReadAsStringAsync());
            LabBSyncInvocation = sync.Headers.GetValues("Pipelines-Invocation").Single();
        }

        using (var queued = await b.PostAsync($"/api/functions/{LabBFunction}/invoke?async=true", new StringContent("x")))
        {
            Assert.Equal(HttpStatusCode.Accepted, queued.StatusCode);
            LabBAsyncInvocation = JsonDocument.Parse(await queued.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        }

        var image = await Images.NewAsync();
        LabBDigest = await Images.IdOfAsync(image);
        var tar = Temp.Combine("seg.tar");
        await using (var file = File.Create(tar))
        await using (var saved = await Images.Client.Images.SaveImageAsync(image, CancellationToken.None))
        {
            await saved.CopyToAsync(file);
        }

        foreach (var version in new[] { "1", "2" })
        {
            await using var body = File.OpenRead(tar);
            var content = new StreamContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/x-tar");
            await ExpectAsync(HttpStatusCode.Created, b.PostAsync($"/api/algorithms/{LabBAlgorithm}/versions/{version}", content));
        }

        await ExpectAsync(HttpStatusCode.OK, b.PostAsync($"/api/algorithms/{LabBAlgorithm}/canary/2?percent=10", null));

        // The async invocation has ended before any test looks at it (its output is there to be refused).
        var until = DateTime.UtcNow.AddMinutes(2);
        while (JsonDocument.Parse(await b.GetStringAsync($"/api/functions/{LabBFunction}/invocations/{LabBAsyncInvocation}")).RootElement.GetProperty("status").GetString() is "queued" or "running")
        {
            Assert.True(DateTime.UtcNow < until, "lab-b's async invocation did not end within 2 minutes");
            await Task.Delay(200);
        }
    }

    public new async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Images.DisposeAsync();
        if (Directory.Exists(_warmRoot))
        {
            Directory.Delete(_warmRoot, recursive: true);
        }
    }

    /// <summary>A function that answers <paramref name="answer"/> to every request.</summary>
    public static string Echo(string name, string answer, string image = "pipelines-samples/pair-check:1") => $"""
        name: {name}
        image: {image}
        command: ["busybox", "sh", "-c", "printf {answer} > /out/answer"]
        """;

    private static async Task ExpectAsync(HttpStatusCode status, Task<HttpResponseMessage> call)
    {
        using var response = await call;
        Assert.True(response.StatusCode == status, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }
}
