using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Pipelines.Server.Access;
using Pipelines.Server.Dashboard;

namespace Pipelines.Tests.Server;

/// <summary>
/// The access matrix of a server without tenants and with keys (a read key, a full key), made from
/// the route table as TenantAccessMatrixTests is, so that an endpoint added later is asked here
/// without editing a list: every API call needs a bearer key (401 without one or with a wrong one),
/// the dashboard a login (302 to the form), a read key may look but not change (403), and past the
/// keys each endpoint answers as its <see cref="TenantAccess"/> kind says for objects nobody has.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class SingleTenantAccessMatrixTests(KeyedServerFixture fixture)
{
    private const string WrongKey = "wrong-key-not-configured-1234";

    public enum Caller { None, Wrong, Read, Full }

    private static IReadOnlyList<AccessRoutes.Endpoint> Table => AccessRoutes.Table(tenants: false);

    [Fact]
    public async Task Every_endpoint_answers_each_caller_as_its_role_and_tenant_access_say()
    {
        Assert.Contains(Table, e => e.Pattern == "/api/runs/{runId}/cancel" && e.Method == "POST");
        var rows = Table.SelectMany(e => Enum.GetValues<Caller>().Select(c => (Endpoint: e, Caller: c))).ToList();
        var failures = new ConcurrentBag<string>();
        await Parallel.ForEachAsync(rows, new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (row, _) =>
        {
            try
            {
                var e = row.Endpoint;
                if (e.Access is null)
                {
                    throw new Xunit.Sdk.XunitException("no TenantAccess metadata (.WithMetadata(TenantAccess.X))");
                }

                await CheckAsync(e.Method, e.Pattern, e.Access, e.Anonymous, row.Caller);
            }
            catch (Exception e) when (e is Xunit.Sdk.XunitException or InvalidOperationException)
            {
                failures.Add($"{row.Endpoint} as {row.Caller}: {e.Message}");
            }
        });

        Assert.True(failures.IsEmpty, string.Join("\n\n", failures.Order(StringComparer.Ordinal)));
    }

    [Fact]
    public async Task Every_dashboard_page_ours_and_hangfires_answers_each_caller_as_its_role_allows()
    {
        // Without tenants every key sees Hangfire's pages as before; its commands (POSTs) are a change.
        var pages = DashboardSetup.Pages.Select(p => (Path: p.Sample, Post: false, Changes: false, Access: (TenantAccess?)p.Access))
            .Concat(AccessRoutes.HangfireRoutes().Where(r => DashboardSetup.Pages.All(p => p.Route != r.Route))
                .Select(r => (Path: AccessRoutes.SamplePath(r.Route), Post: AccessRoutes.IsPost(r.Kind), Changes: r.Kind is "CommandDispatcher" or "BatchCommandDispatcher", Access: (TenantAccess?)null)))
            .ToList();
        Assert.Contains(pages, p => p.Path == "/servers");
        var failures = new ConcurrentBag<string>();
        var rows = pages.SelectMany(p => Enum.GetValues<Caller>().Select(c => (Page: p, Caller: c)));
        await Parallel.ForEachAsync(rows, new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (row, _) =>
        {
            var (path, post, changes, access) = row.Page;
            try
            {
                // Hangfire's own pages are not ours to sort by kind: past the keys they are served.
                await CheckAsync(post ? "POST" : "GET", DashboardSetup.Path + path, access ?? TenantAccess.Open, anonymous: false, row.Caller, changes);
            }
            catch (Exception e) when (e is Xunit.Sdk.XunitException or InvalidOperationException)
            {
                failures.Add($"page {path} as {row.Caller}: {e.Message}");
            }
        });

        Assert.True(failures.IsEmpty, string.Join("\n\n", failures.Order(StringComparer.Ordinal)));
    }

    /// <summary>One endpoint (or page) as one caller, held to its role's and then its kind's rule.</summary>
    private async Task CheckAsync(string method, string pattern, TenantAccess access, bool anonymous, Caller caller, bool? changes = null)
    {
        // A POST changes something, but for Hangfire's counters (a POST that only reads).
        changes ??= method != "GET";
        var dashboard = pattern.StartsWith(DashboardSetup.Path, StringComparison.Ordinal);
        var path = Fill(pattern);
        using var response = await SendAsync(caller, method, path, BodyOf(method, pattern));
        var status = response.StatusCode;
        var body = await response.Content.ReadAsStringAsync();
        if (anonymous)
        {
            // No key needed: the key, a wrong one included, plays no part in the answer.
            using var anyone = await SendAsync(Caller.None, method, path, BodyOf(method, pattern));
            Expect(status == anyone.StatusCode && status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), status, body, $"what a caller without a key gets ({(int)anyone.StatusCode})");
            return;
        }

        switch (caller)
        {
            case Caller.None when dashboard:
                Expect(status == HttpStatusCode.Redirect, status, body, "302 to the login form");
                Expect(response.Headers.Location?.OriginalString.StartsWith("/login?returnUrl=", StringComparison.Ordinal) == true, status, body, $"the login form, not {response.Headers.Location}");
                return;
            case Caller.None or Caller.Wrong:
                Expect(status == HttpStatusCode.Unauthorized, status, body, "401");
                Expect(response.Headers.WwwAuthenticate.ToString() == "Bearer", status, body, "WWW-Authenticate: Bearer");
                Expect(response.Content.Headers.ContentType?.MediaType == "application/problem+json", status, body, "a problem (application/problem+json)");
                return;
            case Caller.Read when changes == true && dashboard:
                // Hangfire's read-only dashboard refuses a command itself, in its own words.
                Expect(status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden, status, body, "a refusal (Hangfire's read-only dashboard)");
                return;
            case Caller.Read when changes == true:
                // The role is checked first: a read key is refused a change whether or not the object exists.
                Expect(status == HttpStatusCode.Forbidden, status, body, "403");
                Expect(response.Content.Headers.ContentType?.MediaType == "application/problem+json", status, body, "a problem (application/problem+json)");
                return;
        }

        // Past the keys (a full key is admin on a server without tenants), over objects nobody has.
        if (access == TenantAccess.Listing)
        {
            Expect(status == HttpStatusCode.OK, status, body, "200");
        }
        else if (access == TenantAccess.Owned)
        {
            Expect(status is >= HttpStatusCode.BadRequest and < HttpStatusCode.InternalServerError and not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), status, body, "the missing object's answer: a 4xx past the keys");
        }
        else if (access == TenantAccess.Creating)
        {
            Expect(status is HttpStatusCode.BadRequest or HttpStatusCode.UnprocessableEntity, status, body, "400 or 422: the body is refused, nothing made");
        }
        else if (access == TenantAccess.Admin)
        {
            // Cluster-wide, reached by the one tenant's keys as their role allows (here over a worker nobody has).
            Expect(status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden) && status < HttpStatusCode.InternalServerError, status, body, "served");
        }
        else
        {
            var toLogin = response.Headers.Location?.OriginalString.StartsWith("/login", StringComparison.Ordinal) == true;
            Expect(status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden or HttpStatusCode.NotFound) && status < HttpStatusCode.InternalServerError && !toLogin, status, body, "served");
        }
    }

    private static void Expect(bool holds, HttpStatusCode status, string body, string what)
    {
        if (!holds)
        {
            throw new Xunit.Sdk.XunitException($"expected {what}; got {(int)status}: {(body.Length > 1000 ? body[..1000] + "..." : body)}");
        }
    }

    /// <summary>The request path: route parameters filled with objects nobody has, and the query an endpoint needs.</summary>
    private string Fill(string pattern)
    {
        var path = AccessRoutes.Fill(pattern, p => AccessRoutes.Missing(pattern, p) ?? throw new InvalidOperationException($"no sample for {{{p}}} (AccessRoutes.Missing)"));
        return pattern switch
        {
            "/api/lineage" => path + "?uri=" + Uri.EscapeDataString($"s3://{fixture.Bucket}/results/{AccessRoutes.NoRun}/run.json"),
            "/api/runs/{runId}/logs" => path + "?task=0",
            _ => path,
        };
    }

    /// <summary>A body for the endpoints that need one, which makes nothing on the shared server: an invalid workflow or function, an empty image, an event nobody watches.</summary>
    private HttpContent? BodyOf(string method, string pattern) => (method, pattern) switch
    {
        ("POST", "/api/runs" or "/api/workflows") => new StringContent("{\"workflow\": \"version: 1\"}", Encoding.UTF8, "application/json"),
        ("POST", "/api/functions") => new StringContent("name: x\n", Encoding.UTF8, "application/yaml"),
        ("POST", "/api/triggers/events") => new StringContent(
            """{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2026-01-01T00:00:00Z","s3":{"bucket":{"name":"BUCKET"},"object":{"key":"matrix/nobody-watches/S001_R1.fastq","size":10,"eTag":"abc"}}}]}"""
                .Replace("BUCKET", fixture.Bucket, StringComparison.Ordinal), Encoding.UTF8, "application/json"),
        ("POST", "/api/algorithms/{name}/versions/{version}") => new ByteArrayContent([]) { Headers = { ContentType = new MediaTypeHeaderValue("application/x-tar") } },
        ("POST", _) when pattern.StartsWith(DashboardSetup.Path, StringComparison.Ordinal) => new FormUrlEncodedContent([]),
        ("POST", _) => new StringContent("hello"),
        _ => null,
    };

    private async Task<HttpResponseMessage> SendAsync(Caller caller, string method, string path, HttpContent? content)
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(fixture.Server.Url) };
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = content };
        var key = caller switch
        {
            Caller.Wrong => WrongKey,
            Caller.Read => ServerFixture.ReadKey,
            Caller.Full => ServerFixture.FullKey,
            _ => null,
        };
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        // The response outlives the client: its content is buffered by SendAsync.
        return await http.SendAsync(request);
    }
}
