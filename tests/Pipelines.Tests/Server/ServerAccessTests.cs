using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Pipelines.Tests.Server;

/// <summary>
/// Access with keys configured, beyond what the access matrix holds every endpoint to
/// (SingleTenantAccessMatrixTests: 401 without a key, the login form for a page, 403 to a read key's
/// change): the login form's session and its end, and keys never written to the server's log.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class ServerAccessTests(KeyedServerFixture fixture)
{
    private const string NoRun = "20000101-000000-000000";

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
