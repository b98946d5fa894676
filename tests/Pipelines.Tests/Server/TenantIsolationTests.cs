using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Pipelines.Tests.Server;

/// <summary>
/// One tenant's key on another tenant's runs and triggers, over real HTTP to a server with two
/// tenants, beyond what the access matrix (TenantAccessMatrixTests) holds every endpoint to: a
/// refused workflow names only the caller's own folders and its own run is accepted, an S3 event
/// under another tenant's prefix starts nothing, and an admin key names only tenants that exist.
/// </summary>
[Collection(TenantServerCollection.Name)]
[Integration]
public sealed partial class TenantIsolationTests(TenantServerFixture fixture)
{
    private const string NoRun = "20000101-000000-000000";

    [Fact]
    public async Task A_run_that_names_another_tenants_folder_is_refused_naming_the_field_and_only_its_own_folders()
    {
        using var a = fixture.As(TenantServerFixture.LabAFull);
        using var response = await a.PostAsJsonAsync("/api/runs", new { workflow = fixture.LaneWorkflow(1, $"s3://{fixture.Bucket}/lab-b/stolen/") });
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = Assert.Single(JsonDocument.Parse(body).RootElement.GetProperty("problems").EnumerateArray());
        Assert.Equal("output.uri", problem.GetProperty("path").GetString());
        Assert.Contains($"allowed is: s3://{fixture.Bucket}/lab-a/ (Tenants:lab-a)", problem.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("lab-b", body.Replace($"s3://{fixture.Bucket}/lab-b/stolen/", "", StringComparison.Ordinal), StringComparison.Ordinal);

        // The same workflow over lab-a's own folders is accepted, and the run is lab-a's alone.
        var run = await ServerFixture.SubmitAsync(a, fixture.LaneWorkflow(1, $"s3://{fixture.Bucket}/lab-a/out/"));
        using var b = fixture.As(TenantServerFixture.LabBFull);
        Assert.Equal(HttpStatusCode.NotFound, (await b.GetAsync($"/api/runs/{run}")).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await a.PostAsync($"/api/runs/{run}/cancel", null)).StatusCode);
    }

    [Fact]
    public async Task Another_tenants_registered_workflow_is_not_listed_and_answers_as_missing()
    {
        using var a = fixture.As(TenantServerFixture.LabAFull);
        using var b = fixture.As(TenantServerFixture.LabBFull);

        Assert.DoesNotContain(TenantServerFixture.LabBWorkflow, await a.GetStringAsync("/api/workflows"), StringComparison.Ordinal);
        Assert.Contains(TenantServerFixture.LabBWorkflow, await b.GetStringAsync("/api/workflows"), StringComparison.Ordinal);

        var (foreignStatus, foreignBody) = await SendAsync(a, "DELETE", "/api/workflows/" + TenantServerFixture.LabBWorkflow);
        var (missingStatus, missingBody) = await SendAsync(a, "DELETE", "/api/workflows/no-such-workflow");
        Assert.Equal(HttpStatusCode.NotFound, foreignStatus);
        Assert.Equal(missingStatus, foreignStatus);
        Assert.Equal(Answer("", missingBody), Answer("", foreignBody.Replace(TenantServerFixture.LabBWorkflow, "no-such-workflow", StringComparison.Ordinal)));
        Assert.Contains(TenantServerFixture.LabBWorkflow, await b.GetStringAsync("/api/workflows"), StringComparison.Ordinal);

        // An S3 event under lab-b's watched prefix, posted with lab-a's key, records nothing for lab-b's workflow.
        var key = "lab-b/incoming/x/S001_R1.fastq";
        var notice = """{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2026-01-01T00:00:00Z","s3":{"bucket":{"name":"BUCKET"},"object":{"key":"KEY","size":10,"eTag":"abc"}}}]}"""
            .Replace("BUCKET", fixture.Bucket, StringComparison.Ordinal).Replace("KEY", key, StringComparison.Ordinal);
        using var ingested = await a.PostAsync("/api/triggers/events", new StringContent(notice, Encoding.UTF8, "application/json"));
        var answer = await ingested.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, ingested.StatusCode);
        Assert.DoesNotContain(TenantServerFixture.LabBWorkflow, answer, StringComparison.Ordinal);
        Assert.Equal(0, JsonDocument.Parse(answer).RootElement.GetProperty("accepted").GetInt32());
    }

    [Fact]
    public async Task The_runs_page_names_each_runs_tenant_to_an_admin_key_over_every_tenant_and_a_tenants_key_sees_no_such_column()
    {
        using var admin = fixture.As(TenantServerFixture.Admin);
        using var a = fixture.As(TenantServerFixture.LabAFull);
        using var b = fixture.As(TenantServerFixture.LabBFull);

        // Filtered by the state lab-b's run ended in, so that other tests' runs do not push it off the first page.
        var state = JsonDocument.Parse(await b.GetStringAsync($"/api/runs/{fixture.LabBRun}")).RootElement.GetProperty("state").GetString();
        var runs = $"/hangfire/runs?state={state}";
        var labA = await a.GetStringAsync(runs);
        var (status, page) = await SendAsync(admin, "GET", runs);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("<th>Tenant</th>", page, StringComparison.Ordinal);
        Assert.Equal(("lab-b", "lab-b"), RunRow(page, fixture.LabBRun));

        // lab-b's key: its run, no column; lab-a's key: no lab-b run at all.
        var theirs = await b.GetStringAsync(runs);
        Assert.Equal(("lab-b", ""), RunRow(theirs, fixture.LabBRun));
        Assert.DoesNotContain("<th>Tenant</th>", theirs, StringComparison.Ordinal);
        Assert.DoesNotContain(fixture.LabBRun, labA, StringComparison.Ordinal);
        Assert.DoesNotContain("<th>Tenant</th>", labA, StringComparison.Ordinal);

        // The admin key naming one tenant works in that tenant: its runs, nothing to tell apart.
        var named = await admin.GetStringAsync(runs + "&tenant=lab-b");
        Assert.Equal(("lab-b", ""), RunRow(named, fixture.LabBRun));
    }

    /// <summary>A run's row on the Runs page: its data-tenant and the Tenant column's text (empty: no column).</summary>
    private static (string Tenant, string Column) RunRow(string page, string runId)
    {
        var row = Regex.Match(page, $"<tr data-run-id=\"{runId}\" data-tenant=\"([^\"]*)\">\\s*(?:<td class=\"tenant\"><code>([^<]*)</code></td>)?<td><a");
        Assert.True(row.Success, page);
        return (row.Groups[1].Value, row.Groups[2].Value);
    }

    [Theory]
    [InlineData("/api/runs?tenant=lab-c", "this server has no tenant 'lab-c'")]
    [InlineData("/api/functions?tenant=Lab_A", "'Lab_A' is not a tenant name")]
    public async Task An_admin_key_naming_a_tenant_the_server_does_not_have_is_refused_naming_it(string path, string detail)
    {
        using var admin = fixture.As(TenantServerFixture.Admin);

        var (status, body) = await SendAsync(admin, "GET", path);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(detail, JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// The body without what differs from request to request: a problem's traceId, or for a
    /// dashboard page the layout around its content (it names the time it was drawn).
    /// </summary>
    private static string Answer(string path, string body)
    {
        if (!path.StartsWith("/hangfire", StringComparison.Ordinal))
        {
            return TraceId().Replace(body, "");
        }

        var start = body.IndexOf("<h1 class=\"page-header\">", StringComparison.Ordinal);
        Assert.True(start >= 0, body);
        return body[start..body.IndexOf("</div></div></div>", start, StringComparison.Ordinal)];
    }

    private static async Task<(HttpStatusCode Status, string Body)> SendAsync(HttpClient http, string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [GeneratedRegex(",?\"traceId\":\"[0-9a-f-]+\"")]
    private static partial Regex TraceId();
}
