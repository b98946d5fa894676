using System.Net.Http.Headers;
using System.Net.Http.Json;

namespace Pipelines.Tests.Server;

/// <summary>
/// A server with two tenants, lab-a and lab-b, each with its own folders in the fixture's bucket
/// (lab-a reads raw/lane1/, lab-b raw/lane2/), a read and a full key of lab-a, a full key of lab-b,
/// and an admin key. lab-b owns a run that has ended (over raw/lane2/, into lab-b/out/) and a
/// registered trigger, so that a test can ask for them with lab-a's keys. The server refuses a
/// Tenants section until every part of it keeps tenants apart; the test-only setting
/// Tenancy:TestOnlyUnscopedParts (PipelinesServer.UnscopedPartsForTests) lets it start for the parts
/// that do (runs, triggers, their pages).
/// </summary>
public sealed class TenantServerFixture : ServerFixture, IAsyncLifetime
{
    public const string LabARead = "lab-a-read-0123456789abcdef";
    public const string LabAFull = "lab-a-full-0123456789abcdef";
    public const string LabBFull = "lab-b-full-0123456789abcdef";
    public const string Admin = "admin-key-0123456789abcdef";

    /// <summary>The workflow lab-b registered with a trigger.</summary>
    public const string LabBWorkflow = "fastq-stats-triggered";

    /// <summary>lab-b's run, ended.</summary>
    public string LabBRun { get; private set; } = null!;

    protected override IReadOnlyDictionary<string, string?> MoreEnv => new Dictionary<string, string?>
    {
        ["PIPELINES_Tenancy__TestOnlyUnscopedParts"] = "true",
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

        var triggered = File.ReadAllText(Path.Combine(Support.TestEnvironment.RepoRoot, "workflows", "fastq-stats-triggered.yaml"));
        string[] set =
        [
            $"input.uri=s3://{Bucket}/lab-b/incoming/", $"trigger.uri=s3://{Bucket}/lab-b/incoming/", $"output.uri=s3://{Bucket}/lab-b/triggered/",
        ];
        using var registered = await b.PostAsJsonAsync("/api/workflows", new { workflow = triggered, set });
        Assert.True(registered.IsSuccessStatusCode, $"{(int)registered.StatusCode}: {await registered.Content.ReadAsStringAsync()}");
    }
}
