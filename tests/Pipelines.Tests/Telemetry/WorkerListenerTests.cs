using System.Net;
using System.Text.Json;
using Npgsql;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Telemetry;

/// <summary>
/// Every `pipelines worker` serves /healthz, /readyz and /metrics on a port of its own, as the
/// server does; the port is chosen by option (Worker:HealthPort, --health-port), taken from the
/// free ones with 0, or off; a port already taken stops the worker at start with what to do.
/// </summary>
[Integration]
public sealed class WorkerListenerTests : IAsyncLifetime
{
    private readonly string _schema = TestEnvironment.NewName("wls_");
    private readonly TempFolder _temp = new();
    private Dictionary<string, string?> _env = null!;

    public Task InitializeAsync()
    {
        _env = new()
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = _schema,
            ["PIPELINES_Hangfire__Schema"] = _schema + "_hangfire",
            ["PIPELINES_HOME"] = _temp.Combine("home"),
            ["PIPELINES_Worker__Concurrency"] = "1",
        };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        _temp.Dispose();
    }

    [Fact]
    public async Task A_worker_serves_health_readiness_and_metrics_and_a_second_one_on_its_port_is_refused_at_start()
    {
        await using var worker = await ObservedClusterFixture.WorkerProcess.StartAsync(_env);
        Assert.Matches("^http://127\\.0\\.0\\.1:[0-9]+$", worker.Url);
        using var http = new HttpClient { BaseAddress = new Uri(worker.Url), Timeout = TimeSpan.FromSeconds(30) };

        using (var healthz = await http.GetAsync("/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, healthz.StatusCode);
        }

        using (var readyz = await http.GetAsync("/readyz"))
        {
            var body = await readyz.Content.ReadAsStringAsync();
            Assert.True(readyz.StatusCode == HttpStatusCode.OK, body);
            var checks = JsonDocument.Parse(body).RootElement.GetProperty("checks");
            Assert.Equal(["bucket", "docker", "harvest", "outage", "postgres"], checks.EnumerateObject().Select(c => c.Name).Order(StringComparer.Ordinal));
            Assert.All(checks.EnumerateObject(), c => Assert.Equal("healthy", c.Value.GetProperty("status").GetString()));
        }

        var metrics = await http.GetStringAsync("/metrics");
        var names = ObservedClusterFixture.SampleNames(metrics);
        Assert.Contains("pipelines_tasks_total", names);
        Assert.Contains("pipelines_harvest_slots", names);
        Assert.Contains("target_info", names);
        Assert.Contains("db_client_connection_count", names);

        // The engine's PostgreSQL pool is named, never labelled with the connection string.
        Assert.Contains("db_client_connection_pool_name=\"pipelines\"", metrics, StringComparison.Ordinal);

        // A second worker of this machine on the same port: refused at start, with what to do.
        var port = new Uri(worker.Url).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var second = await CliRunner.RunAsync(["worker", "--roles", "worker", "--health-port", port], _env, TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, second.ExitCode);
        Assert.Contains($"cannot listen on 127.0.0.1:{port}", second.Stderr + second.Stdout, StringComparison.Ordinal);
        Assert.Contains("--health-port", second.Stderr + second.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_worker_with_its_listener_off_says_so_and_serves_nothing()
    {
        await using var worker = await ObservedClusterFixture.WorkerProcess.StartAsync(_env, "--health-port", "off");
        Assert.Equal("", worker.Url);
        Assert.Contains("no health listener (Worker:HealthPort off)", worker.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_health_port_that_is_not_a_port_is_refused_naming_the_setting()
    {
        var result = await CliRunner.RunAsync(["worker", "--health-port", "ninety"], _env, TimeSpan.FromMinutes(1));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("Worker:HealthPort: 'ninety' is not a port number (0 for any free one) or off", result.Stderr + result.Stdout, StringComparison.Ordinal);
    }
}
