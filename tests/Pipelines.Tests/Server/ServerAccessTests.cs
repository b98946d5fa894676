using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Pipelines.Tests.Server;

/// <summary>
/// Access with keys configured: every API call needs a bearer key, the dashboard a login or the
/// same key, and a read key may look but not change. Checked on every endpoint, for every kind
/// of caller, over real HTTP.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class ServerAccessTests(KeyedServerFixture fixture)
{
    private const string NoRun = "20000101-000000-000000";

    public enum Caller { NoKey, WrongKey, ReadKey, FullKey }

    public static TheoryData<string, string, bool, Caller> Matrix()
    {
        (string Method, string Path, bool Changes)[] endpoints =
        [
            ("GET", "/api/runs", false),
            ("GET", $"/api/runs/{NoRun}", false),
            ("GET", $"/api/runs/{NoRun}/tasks", false),
            ("GET", $"/api/runs/{NoRun}/files/run.json", false),
            ("GET", $"/api/runs/{NoRun}/logs", false),
            ("GET", $"/api/runs/{NoRun}/logs?task=0", false),
            ("GET", "/api/runs?state=running&since=1h", false),
            ("GET", "/openapi/v1.json", false),
            ("POST", "/api/runs", true),
            ("POST", $"/api/runs/{NoRun}/cancel", true),
            ("GET", "/api/workflows", false),
            ("POST", "/api/workflows", true),
            ("DELETE", "/api/workflows/no-such-workflow", true),
            ("POST", "/api/triggers/events", true),
            ("GET", "/api/workers", false),
            ("POST", "/api/workers/no-such-worker/drain", true),
            ("GET", "/hangfire/runs", false),
            ("GET", $"/hangfire/runs/{NoRun}", false),
            ("GET", "/hangfire/servers", false),
            ("GET", "/hangfire/workers", false),
            ("GET", "/hangfire/algorithms", false),
            ("GET", "/api/algorithms/loads", false),
            ("GET", "/metrics", false),
        ];
        var data = new TheoryData<string, string, bool, Caller>();
        foreach (var (method, path, changes) in endpoints)
        {
            foreach (var caller in Enum.GetValues<Caller>())
            {
                data.Add(method, path, changes, caller);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Each_endpoint_answers_each_kind_of_caller_as_its_role_allows(string method, string path, bool changes, Caller caller)
    {
        using var http = NoRedirects();
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method == "POST")
        {
            request.Content = new StringContent("{\"workflow\": \"version: 1\"}", Encoding.UTF8, "application/json");
        }

        var key = caller switch
        {
            Caller.WrongKey => "wrong-key-not-configured-1234",
            Caller.ReadKey => ServerFixture.ReadKey,
            Caller.FullKey => ServerFixture.FullKey,
            _ => null,
        };
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        using var response = await http.SendAsync(request);
        var status = response.StatusCode;
        var dashboard = path.StartsWith("/hangfire", StringComparison.Ordinal);
        switch (caller)
        {
            case Caller.NoKey when dashboard:
                Assert.Equal(HttpStatusCode.Redirect, status);
                Assert.StartsWith("/login?returnUrl=", response.Headers.Location?.OriginalString, StringComparison.Ordinal);
                break;
            case Caller.NoKey or Caller.WrongKey:
                Assert.Equal(HttpStatusCode.Unauthorized, status);
                Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                break;
            case Caller.ReadKey when changes:
                Assert.Equal(HttpStatusCode.Forbidden, status);
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                break;
            default:
                Assert.True(status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden or HttpStatusCode.Redirect), $"{method} {path} as {caller}: {(int)status}");
                break;
        }

        // The health endpoints answer anyone: a load balancer has no key.
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
    }

    [Fact]
    public async Task The_login_form_sets_a_session_that_carries_the_keys_role_until_logout()
    {
        var cookies = new CookieContainer();
        using var http = new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = new Uri(fixture.Server.Url) };

        using var form = await http.GetAsync("/login?returnUrl=%2Fhangfire%2Fruns");
        Assert.Contains("<input type=\"password\" id=\"key\" name=\"key\"", await form.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var wrong = await http.PostAsync("/login", new FormUrlEncodedContent(new Dictionary<string, string> { ["key"] = "not-a-key-at-all-000000", ["returnUrl"] = "/hangfire/runs" }));
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Contains("That key is not valid.", await wrong.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Empty(cookies.GetCookies(new Uri(fixture.Server.Url)));

        using var login = await http.PostAsync("/login", new FormUrlEncodedContent(new Dictionary<string, string> { ["key"] = ServerFixture.ReadKey, ["returnUrl"] = "https://elsewhere.example/" }));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        Assert.Equal("/hangfire/runs", login.Headers.Location?.OriginalString);
        var session = Assert.Single(cookies.GetCookies(new Uri(fixture.Server.Url)));
        Assert.True(session.HttpOnly);
        Assert.DoesNotContain(ServerFixture.ReadKey, session.Value, StringComparison.Ordinal);

        using var runs = await http.GetAsync("/hangfire/runs");
        Assert.Equal(HttpStatusCode.OK, runs.StatusCode);
        var html = await runs.Content.ReadAsStringAsync();
        Assert.Contains("<h1 class=\"page-header\">Runs</h1>", html, StringComparison.Ordinal);
        Assert.DoesNotContain(ServerFixture.ReadKey, html, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/runs")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await http.PostAsync($"/api/runs/{NoRun}/cancel", null)).StatusCode);

        using var logout = await http.PostAsync("/logout", null);
        Assert.Equal(HttpStatusCode.Redirect, logout.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/runs")).StatusCode);
    }

    [Fact]
    public async Task Keys_never_reach_the_servers_log()
    {
        using var http = NoRedirects();
        var from = fixture.Server.Output.Length;
        foreach (var key in new[] { ServerFixture.ReadKey, ServerFixture.FullKey, "wrong-key-not-configured-1234" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/api/runs");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var _ = await http.SendAsync(request);
            using var __ = await http.PostAsync("/login", new FormUrlEncodedContent(new Dictionary<string, string> { ["key"] = key }));
        }

        // The server's output is read by another process's pipe: wait for this test's refusal's
        // line (the server is shared, so an earlier class may have logged one too).
        var log = fixture.Server.Output;
        for (var waited = 0; !log[from..].Contains("login refused from 127.0.0.1", StringComparison.Ordinal) && waited < 100; waited++)
        {
            await Task.Delay(100);
            log = fixture.Server.Output;
        }

        Assert.Contains("login refused from 127.0.0.1", log[from..], StringComparison.Ordinal);
        Assert.DoesNotContain(ServerFixture.ReadKey, log, StringComparison.Ordinal);
        Assert.DoesNotContain(ServerFixture.FullKey, log, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-key-not-configured-1234", log, StringComparison.Ordinal);
        Assert.DoesNotContain(Support.TestEnvironment.Require("AWS_SECRET_ACCESS_KEY"), log, StringComparison.Ordinal);
    }

    private HttpClient NoRedirects() => new(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(fixture.Server.Url) };
}
