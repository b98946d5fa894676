using System.Net;
using System.Text;
using System.Text.Json;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pipelines.Containers.Warm;
using Pipelines.Server;
using Pipelines.Tests.Support;
using Pipelines.Tests.Warm;

namespace Pipelines.Tests.Functions;

/// <summary>
/// Warm means warm, and queue: 0 means no waiting line, on a real `pipelines server` (its api
/// role, built in this process so that the test can await its pool's own events) on PostgreSQL
/// with real warm containers: min_warm containers are there after a deploy without any request,
/// one killed with `docker kill` is replaced, and after the server restarts they are there again.
/// </summary>
[Collection(InProcessHangfire.Name)]
[Integration]
public sealed class FunctionWarmTests : IAsyncLifetime
{
    private const string Owner = "function:kept@1";
    private readonly string _schema = TestEnvironment.NewName("fwm_");
    private readonly string _warmRoot = Path.Combine("/tmp", "fm-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly TempFolder _temp = new();
    private readonly DockerClient _docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
    private WebApplication? _server;
    private string _url = "";

    public Task InitializeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Min_warm_containers_start_at_deploy_are_replaced_when_killed_and_start_again_with_the_server()
    {
        var pool = await StartServerAsync();
        using var http = new HttpClient { BaseAddress = new Uri(_url) };
        using (var deployed = await http.PostAsync("/api/functions", new StringContent($"name: kept\nimage: {WarmTestContext.ForkImage}\ncommand: [\"wordcount\"]\nmin_warm: 2\nmax: 3\n", Encoding.UTF8, "application/yaml")))
        {
            Assert.Equal(HttpStatusCode.Created, deployed.StatusCode);
        }

        // No request yet: the two containers start because of the deploy, and the API shows them.
        await pool.WaitForAsync(s => s.Any(o => o is { Owner: Owner, Warm: 2 }), Timeout());
        var warm = (await DetailAsync(http)).GetProperty("warm").EnumerateArray().Single();
        Assert.Equal((1, 2, 2L), (warm.GetProperty("version").GetInt32(), warm.GetProperty("warm").GetInt32(), warm.GetProperty("started").GetInt64()));

        // One dies: the pool replaces it, up to min_warm again.
        var killed = (await ContainersAsync()).First();
        await _docker.Containers.KillContainerAsync(killed, new ContainerKillParameters());
        await pool.WaitForAsync(s => s.Any(o => o is { Owner: Owner, Warm: 2, Replaced: 1 }) && pool.Removed == 1, Timeout());
        Assert.DoesNotContain(killed, await ContainersAsync());

        // The first request is served by a container that was already up.
        using (var invoked = await http.PostAsync("/api/functions/kept/invoke?filename=a.txt", new StringContent("one two")))
        {
            Assert.Equal(HttpStatusCode.OK, invoked.StatusCode);
        }

        var stats = (await DetailAsync(http)).GetProperty("stats").EnumerateArray().Single();
        Assert.Equal((1L, 0L), (stats.GetProperty("requests").GetInt64(), stats.GetProperty("coldStarts").GetInt64()));

        // A restart: the server's containers go with it, and the new server starts them again.
        await StopServerAsync();
        Assert.Empty(await ContainersAsync());
        pool = await StartServerAsync();
        await pool.WaitForAsync(s => s.Any(o => o is { Owner: Owner, Warm: 2 }), Timeout());
        Assert.Equal(2, (await ContainersAsync()).Count);
    }

    [Fact]
    public async Task With_queue_0_a_request_is_served_while_a_container_can_start_and_one_more_than_max_gets_429()
    {
        await StartServerAsync();
        using var http = new HttpClient { BaseAddress = new Uri(_url) };
        using (var deployed = await http.PostAsync("/api/functions", new StringContent($"name: lined\nimage: {WarmTestContext.ForkImage}\ncommand: [\"sh\", \"-c\", \"sleep 3; echo done > /out/r.txt\"]\nmax: 1\nqueue: 0\n", Encoding.UTF8, "application/yaml")))
        {
            Assert.Equal(HttpStatusCode.Created, deployed.StatusCode);
        }

        // Nothing runs: a request waits only for its container's start, and is served (it was refused for ever).
        using (var alone = await http.PostAsync("/api/functions/lined/invoke", new StringContent("x")))
        {
            Assert.Equal(HttpStatusCode.OK, alone.StatusCode);
        }

        // Two at once on the one container max allows: one is served, the other finds it busy, and
        // with no waiting line gets 429 at once.
        var both = await Task.WhenAll(
            http.PostAsync("/api/functions/lined/invoke", new StringContent("y")),
            http.PostAsync("/api/functions/lined/invoke", new StringContent("z")));
        var answers = await Task.WhenAll(both.Select(async r => (r.StatusCode, Body: await r.Content.ReadAsStringAsync())));
        foreach (var response in both)
        {
            response.Dispose();
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.TooManyRequests], answers.Select(a => a.StatusCode).Order());
        Assert.Contains("0 requests already wait for a warm container of function:lined@1; try again later, or raise max (now 1) or queue (now 0)", answers.Single(a => a.StatusCode == HttpStatusCode.TooManyRequests).Body, StringComparison.Ordinal);
    }

    /// <summary>A `pipelines server` with the api role, in this process; its warm pool.</summary>
    private async Task<DockerWarmPool> StartServerAsync()
    {
        _url = $"http://127.0.0.1:{ServerProcess.FreePort()}";
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Postgres"] = TestEnvironment.Postgres,
            ["Schema"] = _schema,
            ["Hangfire:Schema"] = _schema + "_hangfire",
            ["Server:Roles"] = "api",
            ["Docker:WarmRoot"] = _warmRoot,
            ["Docker:WarmHelper"] = WarmTestContext.Helper,
            ["Worker:Scratch"] = _temp.Combine("scratch"),
            ["Functions:Output"] = _temp.Combine("functions"),
        }).Build();
        _server = PipelinesServer.Build(config, _url, LogLevel.Warning);
        await _server.StartAsync();
        return (DockerWarmPool)_server.Services.GetRequiredService<IWarmPool>();
    }

    private async Task StopServerAsync()
    {
        if (_server is not null)
        {
            await _server.StopAsync();
            await _server.DisposeAsync();
            _server = null;
        }
    }

    private static async Task<JsonElement> DetailAsync(HttpClient http)
    {
        using var response = await http.GetAsync("/api/functions/kept");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>The Docker ids of the function version's warm containers that are running.</summary>
    private async Task<List<string>> ContainersAsync() => (await _docker.Containers.ListContainersAsync(new ContainersListParameters
    {
        Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{DockerWarmPool.WarmOwnerLabel}={Owner}"] = true } },
    })).Where(c => c.Mounts.Any(m => m.Source.StartsWith(_warmRoot, StringComparison.Ordinal))).Select(c => c.ID).ToList();

    private static CancellationToken Timeout() => new CancellationTokenSource(TimeSpan.FromSeconds(90)).Token;

    public async Task DisposeAsync()
    {
        await StopServerAsync();
        await using (var db = NpgsqlDataSource.Create(TestEnvironment.Postgres))
        await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        _docker.Dispose();
        _temp.Dispose();
        if (Directory.Exists(_warmRoot))
        {
            Directory.Delete(_warmRoot, recursive: true);
        }
    }
}
