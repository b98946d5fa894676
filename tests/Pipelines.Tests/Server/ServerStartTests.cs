using System.Net;
using Pipelines.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>
/// How `pipelines server` starts where it is deployed: it will not listen beyond loopback
/// without a key, and the keys sealing its login cookies outlive it (a container has no home
/// folder that survives).
/// </summary>
[Integration]
public sealed class ServerStartTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Theory]
    [InlineData("http://0.0.0.0:8080")]
    [InlineData("http://[::]:8080")]
    [InlineData("http://*:8080")]
    [InlineData("http://127.0.0.1:8080;http://+:8081")]
    [InlineData("http://192.0.2.7:8080")]
    public async Task A_server_beyond_loopback_with_no_key_refuses_to_start_with_one_line_saying_how_to_set_one(string urls)
    {
        var result = await CliRunner.RunAsync(["server", "--urls", urls], new Dictionary<string, string?> { ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres, ["HOME"] = _temp.Path });

        Assert.Equal(1, result.ExitCode);
        var open = urls.Split(';').First(u => !u.StartsWith("http://127.", StringComparison.Ordinal));
        Assert.Equal($"error: no access key is configured, so the server may listen on loopback only, not on {open}: set a key first, e.g. PIPELINES_Server__Keys__0__Key=$(openssl rand -hex 24) PIPELINES_Server__Keys__0__Role=full (docs/server.md)", result.Stderr.Trim());
    }

    [Fact]
    public async Task A_server_with_no_key_that_Kestrels_own_settings_open_beyond_loopback_stops_once_it_sees_where_it_listens()
    {
        // Kestrel:Endpoints overrides the URLs given: the check is made again on the addresses bound.
        var port = ServerProcess.FreePort();
        var result = await CliRunner.RunAsync(
            ["server", "--urls", "http://127.0.0.1:9"],
            new Dictionary<string, string?> { ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres, ["HOME"] = _temp.Path, ["PIPELINES_Kestrel__Endpoints__Open__Url"] = $"http://0.0.0.0:{port}" });

        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"error: no access key is configured, so the server may listen on loopback only, not on http://0.0.0.0:{port}: set a key first, e.g. PIPELINES_Server__Keys__0__Key=$(openssl rand -hex 24) PIPELINES_Server__Keys__0__Role=full (docs/server.md)", result.Stderr.Trim().Split('\n')[^1]);
    }

    [Fact]
    public async Task An_empty_listen_setting_is_refused_rather_than_left_to_Kestrels_default_of_every_address()
    {
        var result = await CliRunner.RunAsync(["server", "--urls", " "], new Dictionary<string, string?> { ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres, ["HOME"] = _temp.Path });

        Assert.Equal(1, result.ExitCode);
        Assert.Equal("error: Server:Urls (or --urls) is empty: name where to listen, e.g. http://127.0.0.1:8080", result.Stderr.Trim());
    }

    [Fact]
    public async Task A_server_with_no_key_answers_only_loopback_host_names_so_a_rebound_name_cannot_reach_it()
    {
        await using var server = await ServerProcess.StartAsync(new Dictionary<string, string?> { ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres, ["HOME"] = _temp.Path }, ["--roles", "api"]);
        using var http = server.Client();

        using var rebound = new HttpRequestMessage(HttpMethod.Get, "/api/runs");
        rebound.Headers.Host = "attacker.example";
        using var refused = await http.SendAsync(rebound);
        using var local = await http.GetAsync("/api/runs");

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(HttpStatusCode.OK, local.StatusCode);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080", null)]
    [InlineData("http://localhost:8080;http://[::1]:8081", null)]
    [InlineData("https://127.10.0.1:8443/", null)]
    [InlineData("http://0.0.0.0:8080", "http://0.0.0.0:8080")]
    [InlineData("http://pipelines.example:80", "http://pipelines.example:80")]
    [InlineData("http://[::ffff:10.0.0.1]:80", "http://[::ffff:10.0.0.1]:80")]
    public void Loopback_means_localhost_127_0_0_0_8_and_the_IPv6_loopback_only(string urls, string? beyond) =>
        Assert.Equal(beyond, ServerOptions.FirstBeyondLoopback(urls));

    [Fact]
    public async Task A_dashboard_session_outlives_a_restart_with_a_fresh_home_folder()
    {
        var schema = TestEnvironment.NewName("dpk_");
        var key = "restart-key-" + Guid.NewGuid().ToString("N");
        Dictionary<string, string?> Env(string home) => new()
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = schema,
            ["PIPELINES_Hangfire__Schema"] = schema + "_hangfire",
            ["PIPELINES_Server__Keys__0__Key"] = key,
            ["PIPELINES_Server__Keys__0__Role"] = "read",
            ["PIPELINES_HOME"] = _temp.Combine(home, "state"),

            // As in a new container: ASP.NET Core's default key folder (~/.aspnet) starts empty.
            ["HOME"] = _temp.Combine(home),
        };
        Directory.CreateDirectory(_temp.Combine("first"));
        Directory.CreateDirectory(_temp.Combine("second"));
        var cookies = new CookieContainer();

        await using (var first = await ServerProcess.StartAsync(Env("first"), ["--roles", "api,dashboard"]))
        {
            using var http = Client(first, cookies);
            using var login = await http.PostAsync("/login", new FormUrlEncodedContent(new Dictionary<string, string> { ["key"] = key, ["returnUrl"] = "/hangfire/runs" }));
            Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/hangfire/runs")).StatusCode);
        }

        await using var second = await ServerProcess.StartAsync(Env("second"), ["--roles", "api,dashboard"]);
        using var again = Client(second, cookies);
        using var runs = await again.GetAsync("/hangfire/runs");

        Assert.Equal(HttpStatusCode.OK, runs.StatusCode);
        Assert.Contains("<h1 class=\"page-header\">Runs</h1>", await runs.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(_temp.Combine("first", ".aspnet", "DataProtection-Keys")));
    }

    [Fact]
    public async Task A_server_with_two_tenants_starts_and_answers_each_tenants_key_and_the_admin_key()
    {
        var schema = TestEnvironment.NewName("ten_");
        await using var server = await ServerProcess.StartAsync(
            new Dictionary<string, string?>
            {
                ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
                ["PIPELINES_Schema"] = schema,
                ["PIPELINES_Hangfire__Schema"] = schema + "_hangfire",
                ["PIPELINES_HOME"] = _temp.Combine("home"),
                ["HOME"] = _temp.Path,
                ["PIPELINES_Tenants__lab-a__Output"] = "s3://lab-a-results/",
                ["PIPELINES_Tenants__lab-b__Output"] = "s3://lab-b-results/",
                ["PIPELINES_Server__Keys__0__Key"] = "start-lab-a-0123456789",
                ["PIPELINES_Server__Keys__0__Role"] = "full",
                ["PIPELINES_Server__Keys__0__Tenant"] = "lab-a",
                ["PIPELINES_Server__Keys__1__Key"] = "start-admin-0123456789",
                ["PIPELINES_Server__Keys__1__Role"] = "admin",
            },
            ["--roles", "api,dashboard"]);

        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "start-lab-a-0123456789", "/api/runs"));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "start-lab-a-0123456789", "/hangfire/runs"));
        Assert.Equal(HttpStatusCode.NotFound, await StatusAsync(server, "start-lab-a-0123456789", "/hangfire/servers"));
        Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(server, "start-lab-a-0123456789", "/metrics"));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "start-admin-0123456789", "/hangfire/servers"));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "start-admin-0123456789", "/api/runs?tenant=lab-b"));
    }

    public void Dispose() => _temp.Dispose();

    private static async Task<HttpStatusCode> StatusAsync(ServerProcess server, string key, string path)
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(server.Url) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        using var response = await http.GetAsync(path);
        return response.StatusCode;
    }

    // The second server listens on another port of 127.0.0.1; a cookie belongs to the host, not
    // the port, so the same container sends the first server's session cookie to it.
    private static HttpClient Client(ServerProcess server, CookieContainer cookies) =>
        new(new HttpClientHandler { CookieContainer = cookies, UseCookies = true, AllowAutoRedirect = false }) { BaseAddress = new Uri(server.Url) };
}
