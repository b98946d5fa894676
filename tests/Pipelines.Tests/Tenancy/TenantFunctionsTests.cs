using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Amazon.S3.Model;
using Pipelines.Tests.Server;

namespace Pipelines.Tests.Tenancy;

/// <summary>
/// Functions and algorithms of two tenants on the tenant classes' one server (<see cref="TenantServerFixture"/>:
/// a `pipelines server` process, PostgreSQL, S3, Docker): lab-b deployed a function, invoked it (once
/// now, once queued) and pushed an algorithm; lab-a's key finds none of it: every answer about lab-b's
/// objects is, byte for byte, the answer about a missing one.
/// </summary>
[Collection(TenantServerCollection.Name)]
[Integration]
public sealed class TenantFunctionsTests(TenantServerFixture lab)
{
    private const string MissingId = "0000000000007000800000000000beef";

    [Fact]
    public async Task Lab_as_key_on_lab_bs_function_invocations_and_algorithm_gets_what_it_gets_for_missing_ones()
    {
        using var a = lab.As(TenantServerFixture.LabAFull);
        using var b = lab.As(TenantServerFixture.LabBFull);
        var channelsBefore = Channels((await AnswerAsync(b, "GET", "/api/algorithms/seg-b", null)).Body);
        (string Method, string Path, string Missing, string? Body)[] calls =
        [
            ("GET", "/api/functions/echo-b", "/api/functions/nope-b", null),
            ("GET", "/api/functions/echo-b?window=5m", "/api/functions/nope-b?window=5m", null),
            ("GET", "/api/functions/echo-b/invocations", "/api/functions/nope-b/invocations", null),
            ("GET", $"/api/functions/echo-b/invocations/{lab.LabBSyncInvocation}", $"/api/functions/echo-b/invocations/{MissingId}", null),
            ("GET", $"/api/functions/echo-b/invocations/{lab.LabBAsyncInvocation}", $"/api/functions/echo-b/invocations/{MissingId}", null),
            ("GET", $"/api/functions/echo-b/invocations/{lab.LabBAsyncInvocation}/output", $"/api/functions/echo-b/invocations/{MissingId}/output", null),
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
        foreach (var path in new[] { "/api/functions/echo-b", $"/api/functions/echo-b/invocations/{lab.LabBSyncInvocation}", $"/api/functions/echo-b/invocations/{lab.LabBAsyncInvocation}" })
        {
            Assert.Equal(HttpStatusCode.OK, (await AnswerAsync(b, "GET", path, null)).Status);
        }

        var algorithm = (await AnswerAsync(b, "GET", "/api/algorithms/seg-b", null)).Body;
        Assert.Contains("stable", channelsBefore);
        Assert.Equal(channelsBefore, Channels(algorithm));
        Assert.Equal("lab-b", JsonDocument.Parse(algorithm).RootElement.GetProperty("tenant").GetString());
    }

    [Fact]
    public async Task Listings_and_pages_of_lab_a_leave_out_lab_bs_functions_algorithms_and_loads()
    {
        using var a = lab.As(TenantServerFixture.LabAFull);
        using var b = lab.As(TenantServerFixture.LabBFull);

        foreach (var path in new[] { "/api/functions", "/api/algorithms", "/api/algorithms/loads", "/hangfire/functions", "/hangfire/algorithms" })
        {
            var theirs = await AnswerAsync(b, "GET", path, null);
            var mine = await AnswerAsync(a, "GET", path, null);

            Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (theirs.Status, mine.Status));
            foreach (var name in new[] { "echo-b", "seg-b", "by-digest-b", lab.LabBDigest })
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
        using var a = lab.As(TenantServerFixture.LabAFull);
        using var b = lab.As(TenantServerFixture.LabBFull);
        Assert.Equal(HttpStatusCode.Created, (await AnswerAsync(a, "POST", "/api/functions", TenantServerFixture.Echo("same", "A"))).Status);
        Assert.Equal(HttpStatusCode.Created, (await AnswerAsync(b, "POST", "/api/functions", TenantServerFixture.Echo("same", "B"))).Status);

        var fromA = await AnswerAsync(a, "POST", "/api/functions/same/invoke", "x");
        var fromB = await AnswerAsync(b, "POST", "/api/functions/same/invoke", "x");

        Assert.Equal((HttpStatusCode.OK, "A"), (fromA.Status, fromA.Body));
        Assert.Equal((HttpStatusCode.OK, "B"), (fromB.Status, fromB.Body));
        Assert.Equal(HttpStatusCode.NoContent, (await AnswerAsync(a, "DELETE", "/api/functions/same", null)).Status);
        Assert.Equal(HttpStatusCode.OK, (await AnswerAsync(b, "GET", "/api/functions/same", null)).Status);
    }

    [Fact]
    public async Task An_admin_key_over_every_tenant_sees_two_tenants_functions_of_one_name_apart_on_the_page_and_in_the_listing()
    {
        using var a = lab.As(TenantServerFixture.LabAFull);
        using var b = lab.As(TenantServerFixture.LabBFull);
        using var admin = lab.As(TenantServerFixture.Admin);
        Assert.Equal(HttpStatusCode.Created, (await AnswerAsync(a, "POST", "/api/functions", TenantServerFixture.Echo("twin", "A"))).Status);
        Assert.Equal(HttpStatusCode.Created, (await AnswerAsync(b, "POST", "/api/functions", TenantServerFixture.Echo("twin", "B"))).Status);
        foreach (var (http, times) in new[] { (a, 2), (b, 1) })
        {
            for (var i = 0; i < times; i++)
            {
                Assert.Equal(HttpStatusCode.OK, (await AnswerAsync(http, "POST", "/api/functions/twin/invoke", "x")).Status);
            }
        }

        // The page over every tenant: one row per tenant's function, each with its own figures, and whose it is.
        var page = await AnswerAsync(admin, "GET", "/hangfire/functions", null);
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Equal([("lab-a", "2"), ("lab-b", "1")], Rows(page.Body, "twin"));
        Assert.Contains("<th>Tenant</th>", page.Body, StringComparison.Ordinal);
        Assert.Contains("href=\"/api/functions/twin?tenant=lab-b\"", page.Body, StringComparison.Ordinal);

        // lab-a's own page: its function alone, with no tenant column (everything there is its own).
        var own = await AnswerAsync(a, "GET", "/hangfire/functions", null);
        Assert.Equal([("lab-a", "2")], Rows(own.Body, "twin"));
        Assert.DoesNotContain("<th>Tenant</th>", own.Body, StringComparison.Ordinal);

        // The listing behind it names each function's tenant.
        var listed = JsonDocument.Parse((await AnswerAsync(admin, "GET", "/api/functions", null)).Body).RootElement.EnumerateArray()
            .Where(f => f.GetProperty("name").GetString() == "twin").Select(f => f.GetProperty("tenant").GetString()).ToList();
        Assert.Equal(["lab-a", "lab-b"], listed);
    }

    [Fact]
    public async Task An_admin_key_over_every_tenant_sees_two_tenants_algorithms_of_one_name_on_rows_of_their_own_under_a_tenant_column()
    {
        using var a = lab.As(TenantServerFixture.LabAFull);
        using var b = lab.As(TenantServerFixture.LabBFull);
        using var admin = lab.As(TenantServerFixture.Admin);

        // A new image (no other test's digest), pushed by each tenant as its own algorithm twin-alg: lab-a version 1, lab-b 1 and 2.
        var image = await lab.Images.NewAsync();
        var tar = lab.Temp.Combine("twin-alg.tar");
        await using (var file = File.Create(tar))
        await using (var saved = await lab.Images.Client.Images.SaveImageAsync(image, CancellationToken.None))
        {
            await saved.CopyToAsync(file);
        }

        foreach (var (http, version) in new[] { (a, "1"), (b, "1"), (b, "2") })
        {
            await using var body = File.OpenRead(tar);
            using var content = new StreamContent(body);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-tar");
            using var pushed = await http.PostAsync($"/api/algorithms/twin-alg/versions/{version}", content);
            Assert.True(pushed.StatusCode == HttpStatusCode.Created, await pushed.Content.ReadAsStringAsync());
        }

        // Over every tenant: a row per tenant's version, each naming its tenant in the Tenant column.
        var page = await AnswerAsync(admin, "GET", "/hangfire/algorithms", null);
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Contains("<th>Tenant</th>", page.Body, StringComparison.Ordinal);
        Assert.Equal([("lab-a", "1", "lab-a"), ("lab-b", "1", "lab-b"), ("lab-b", "2", "lab-b")], AlgorithmRows(page.Body, "twin-alg").Order().ToList());

        // A tenant's key: its own versions only, and no Tenant column.
        var own = await AnswerAsync(a, "GET", "/hangfire/algorithms", null);
        Assert.Equal([("lab-a", "1", "")], AlgorithmRows(own.Body, "twin-alg"));
        Assert.DoesNotContain("<th>Tenant</th>", own.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("class=\"tenant\"", own.Body, StringComparison.Ordinal);
        var theirs = await AnswerAsync(b, "GET", "/hangfire/algorithms", null);
        Assert.Equal([("lab-b", "1", ""), ("lab-b", "2", "")], AlgorithmRows(theirs.Body, "twin-alg").Order().ToList());
    }

    /// <summary>The Algorithms page's version rows of an algorithm: each row's data-tenant, version and the Tenant column's text (empty: no column).</summary>
    private static List<(string Tenant, string Version, string Column)> AlgorithmRows(string page, string algorithm) =>
        Regex.Matches(page, $"<tr data-algorithm=\"{algorithm}\" data-version=\"([^\"]*)\" data-tenant=\"([^\"]*)\">\\s*(?:<td class=\"tenant\"><code>([^<]*)</code></td>)?<td><code>{algorithm}</code>")
            .Select(m => (m.Groups[2].Value, m.Groups[1].Value, m.Groups[3].Value)).ToList();

    /// <summary>The Functions page's rows of a function: each row's tenant and requests.</summary>
    private static List<(string Tenant, string Requests)> Rows(string page, string function) =>
        Regex.Matches(page, $"<tr data-function=\"{function}\"[^>]* data-tenant=\"([^\"]*)\">.*?<td class=\"requests\">([0-9]+)</td>", RegexOptions.Singleline)
            .Select(m => (m.Groups[1].Value, m.Groups[2].Value)).ToList();

    [Fact]
    public async Task A_deploy_or_a_run_of_lab_a_naming_lab_bs_pushed_image_is_refused_as_an_image_that_is_not_there()
    {
        using var a = lab.As(TenantServerFixture.LabAFull);
        var missing = "pipelines-tests/no-such-image:" + Guid.NewGuid().ToString("N")[..8];

        var deploy = await AnswerAsync(a, "POST", "/api/functions", TenantServerFixture.Echo("stolen", "x", lab.LabBDigest));
        var deployMissing = await AnswerAsync(a, "POST", "/api/functions", TenantServerFixture.Echo("stolen", "x", missing));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, deploy.Status);
        Assert.Contains("is not on the Docker engine", deploy.Body, StringComparison.Ordinal);
        Assert.Equal((deployMissing.Status, deployMissing.Body.Replace(missing, lab.LabBDigest, StringComparison.Ordinal)), (deploy.Status, deploy.Body));

        var run = await AnswerAsync(a, "POST", "/api/runs", JsonSerializer.Serialize(new { workflow = Workflow(lab.LabBDigest) }), json: true);
        var runMissing = await AnswerAsync(a, "POST", "/api/runs", JsonSerializer.Serialize(new { workflow = Workflow(missing) }), json: true);
        Assert.True(run.Status is >= HttpStatusCode.BadRequest and < HttpStatusCode.InternalServerError, $"{run.Status} {run.Body}");
        Assert.Contains("is not on the Docker engine", run.Body, StringComparison.Ordinal);
        Assert.Equal((runMissing.Status, runMissing.Body.Replace(missing, lab.LabBDigest, StringComparison.Ordinal)), (run.Status, run.Body));

        // lab-b deploys its own image by digest.
        using var b = lab.As(TenantServerFixture.LabBFull);
        Assert.Equal(HttpStatusCode.Created, (await AnswerAsync(b, "POST", "/api/functions", TenantServerFixture.Echo("by-digest-b", "x", lab.LabBDigest))).Status);
    }

    [Fact]
    public async Task An_async_invocation_of_lab_b_keeps_its_input_under_lab_bs_own_output_folder()
    {
        // Every key of the bucket that names the invocation (the server is shared: other keys are other tests').
        var keys = new List<string>();
        var request = new ListObjectsV2Request { BucketName = lab.Bucket };
        ListObjectsV2Response page;
        do
        {
            page = await lab.Stores.S3Client.ListObjectsV2Async(request);
            keys.AddRange((page.S3Objects ?? []).Select(o => o.Key).Where(k => k.Contains(lab.LabBAsyncInvocation, StringComparison.Ordinal)));
            request.ContinuationToken = page.NextContinuationToken;
        }
        while (page.IsTruncated == true);

        Assert.Contains($"lab-b/functions/echo-b/{lab.LabBAsyncInvocation}/input.json", keys);
        Assert.All(keys, k => Assert.StartsWith($"lab-b/functions/echo-b/{lab.LabBAsyncInvocation}/", k, StringComparison.Ordinal));
    }

    /// <summary>An algorithm's channels (name, version, share), as its owner reads them.</summary>
    private static string Channels(string algorithm) =>
        string.Join(", ", JsonDocument.Parse(algorithm).RootElement.GetProperty("channels").EnumerateArray().Select(c => c.GetRawText()));

    /// <summary>A workflow of lab-a's over its own folders whose one step runs <paramref name="image"/>.</summary>
    private string Workflow(string image) => $$"""
        version: 1
        name: stolen
        input:
          uri: s3://{{lab.Bucket}}/lab-a/raw/
          include: ["*.fastq"]
        steps:
          - name: look
            image: {{image}}
            command: ["busybox", "true"]
            outputs: ["*.tsv"]
        output:
          uri: s3://{{lab.Bucket}}/lab-a/out/
        """;

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
}
