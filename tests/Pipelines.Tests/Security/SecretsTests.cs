using System.Globalization;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Docker.DotNet;
using Microsoft.Extensions.Configuration;
using Npgsql;
using Pipelines.Storage;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;
using Xunit.Abstractions;

namespace Pipelines.Tests.Security;

/// <summary>
/// No secret of the engine's configuration (S3 secret key, access keys, database password, other
/// values of its environment) appears in anything a run leaves: stored objects, the run store and
/// Hangfire's tables, API answers, dashboard pages, the server's log, the CLI's output, or the
/// environment of a step's container.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed partial class SecretsTests(SecretsFixture fixture, ITestOutputHelper output) : IClassFixture<SecretsFixture>
{
    [Fact]
    public async Task No_secret_appears_in_any_object_the_runs_leave_in_the_bucket()
    {
        var objects = await fixture.StoredObjectsAsync();

        foreach (var run in fixture.RunIds)
        {
            Assert.Contains(objects, o => o.Where.EndsWith($"/{run}/run.json", StringComparison.Ordinal));
            Assert.Contains(objects, o => o.Where.EndsWith($"/{run}/provenance/tasks.parquet (decoded)", StringComparison.Ordinal));
            Assert.Contains(objects, o => o.Where.EndsWith($"/{run}/workflow.yaml", StringComparison.Ordinal));
        }

        Assert.Contains(objects, o => o.Where.EndsWith("/env.txt", StringComparison.Ordinal));
        Assert.Contains(objects, o => o.Where.Contains("ro-crate", StringComparison.Ordinal));
        Assert.Contains(objects, o => o.Text.Contains("failing on purpose", StringComparison.Ordinal));
        output.WriteLine(fixture.AssertNoSecret(objects));
    }

    [Fact]
    public async Task No_secret_appears_in_the_run_store_or_hangfire_tables()
    {
        var rows = await fixture.DatabaseRowsAsync();

        Assert.Contains(rows, r => r.Where.EndsWith(".job", StringComparison.Ordinal) && r.Text.Length > 0);
        output.WriteLine(fixture.AssertNoSecret(rows));
    }

    [Fact]
    public async Task No_secret_appears_in_any_api_answer_including_errors()
    {
        using var full = fixture.Server.Client(fixture.FullKey);
        var answers = new List<(string Where, string Text)>(fixture.ErrorAnswers)
        {
            await SecretsFixture.GetAsync(full, "/api/runs"),
            await SecretsFixture.GetAsync(full, "/healthz"),
            await SecretsFixture.GetAsync(full, "/readyz"),
            await SecretsFixture.GetAsync(full, "/openapi/v1.json"),
            await SecretsFixture.GetAsync(full, "/api/workflows"),
        };
        foreach (var run in fixture.RunIds)
        {
            answers.Add(await SecretsFixture.GetAsync(full, $"/api/runs/{run}"));
            answers.Add(await SecretsFixture.GetAsync(full, $"/api/runs/{run}/tasks?limit=500"));
            foreach (var file in await fixture.RunFilesAsync(run))
            {
                answers.Add(await SecretsFixture.GetAsync(full, $"/api/runs/{run}/files/{file}"));
            }

            answers.Add(await SecretsFixture.GetAsync(full, $"/api/runs/{run}/files/no/such/file.txt"));
        }

        Assert.Contains(answers, a => a.Where.StartsWith("GET /readyz (200)", StringComparison.Ordinal));
        Assert.Contains(answers, a => a.Where.Contains("(401)", StringComparison.Ordinal));
        Assert.Contains(answers, a => a.Where.Contains("(403)", StringComparison.Ordinal));
        Assert.Contains(answers, a => a.Where.Contains("(404)", StringComparison.Ordinal));
        Assert.Contains(answers, a => a.Where.Contains("(400)", StringComparison.Ordinal));
        Assert.Contains(answers, a => a.Where.Contains("(422)", StringComparison.Ordinal));
        Assert.Contains(answers, a => a.Where.Contains("(409)", StringComparison.Ordinal));
        Assert.Contains(answers, a => a.Where.Contains("(500)", StringComparison.Ordinal));
        output.WriteLine(fixture.AssertNoSecret(answers));
    }

    [Fact]
    public async Task No_secret_appears_in_any_dashboard_page()
    {
        using var full = fixture.Server.Client(fixture.FullKey);
        var pages = new List<(string Where, string Text)>
        {
            await SecretsFixture.GetAsync(full, "/hangfire"),
            await SecretsFixture.GetAsync(full, "/hangfire/runs"),
            await SecretsFixture.GetAsync(full, "/hangfire/jobs/succeeded"),
            await SecretsFixture.GetAsync(full, "/hangfire/jobs/failed"),
            await SecretsFixture.GetAsync(full, "/hangfire/jobs/processing"),
            await SecretsFixture.GetAsync(full, "/hangfire/jobs/deleted"),
            await SecretsFixture.GetAsync(full, "/hangfire/retries"),
            await SecretsFixture.GetAsync(full, "/hangfire/recurring"),
            await SecretsFixture.GetAsync(full, "/hangfire/servers"),
            await SecretsFixture.GetAsync(full, "/login"),
        };
        foreach (var run in fixture.RunIds)
        {
            pages.Add(await SecretsFixture.GetAsync(full, $"/hangfire/runs/{run}"));
        }

        var jobs = JobLink().Matches(pages[2].Text).Select(m => m.Groups["id"].Value).Distinct().ToList();
        Assert.NotEmpty(jobs);
        foreach (var job in jobs.Take(5))
        {
            pages.Add(await SecretsFixture.GetAsync(full, $"/hangfire/jobs/details/{job}"));
        }

        Assert.All(pages, p => Assert.Contains("(200)", p.Where, StringComparison.Ordinal));
        Assert.Contains(pages, p => p.Where.Contains("/jobs/details/", StringComparison.Ordinal) && p.Text.Contains("TaskJob", StringComparison.Ordinal));
        output.WriteLine(fixture.AssertNoSecret(pages));
    }

    [Fact]
    public void No_secret_appears_in_the_server_log_or_the_CLI_output()
    {
        Assert.Contains($"run {fixture.SucceededRun} of envdump submitted by operator", fixture.Server.Output, StringComparison.Ordinal);
        Assert.Contains(fixture.CliRun, fixture.CliStatusResult.Stdout, StringComparison.Ordinal);
        output.WriteLine(fixture.AssertNoSecret(
        [
            ("the server's stdout and stderr", fixture.Server.Output),
            ("pipelines run --server", fixture.CliRunResult.ToString()),
            ("pipelines status --server", fixture.CliStatusResult.ToString()),
            ("pipelines status --server --key <wrong>", fixture.CliWrongKeyResult.ToString()),
        ]));
    }

    [Fact]
    public async Task A_step_container_gets_its_own_env_and_the_image_env_but_nothing_of_the_engine()
    {
        var objects = await fixture.StoredObjectsAsync();
        var dump = objects.Single(o => o.Where.Contains($"/envdump/{fixture.SucceededRun}/", StringComparison.Ordinal) && o.Where.EndsWith("/env.txt", StringComparison.Ordinal)).Text;
        var names = dump.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=')[0]).ToHashSet(StringComparer.Ordinal);

        using var docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        var image = await docker.Images.InspectImageAsync("pipelines-samples/pair-check:1");
        var allowed = (image.Config?.Env ?? []).Select(e => e.Split('=')[0])
            .Concat(["STEP_OWN", "HOSTNAME", "HOME", "PWD", "SHLVL"])
            .ToHashSet(StringComparer.Ordinal);

        Assert.Contains("STEP_OWN=step-value", dump, StringComparison.Ordinal);
        Assert.Empty(names.Except(allowed));
        Assert.Empty(names.Intersect(fixture.Env.Keys.Concat(["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "DOCKER_HOST"])));
        output.WriteLine(fixture.AssertNoSecret([("env.txt", dump)]));
    }

    [Fact]
    public async Task Two_runs_of_one_workflow_on_one_worker_never_share_a_warm_container()
    {
        // The step takes the default reuse: its tasks are requests to warm containers, whose
        // HOSTNAME is the container's id. The API's run and the CLI's run (same step, same
        // image, same worker) must each have had containers of their own.
        var objects = await fixture.StoredObjectsAsync();
        string HostOf(string folder, string run) => objects
            .Single(o => o.Where.Contains($"/{folder}/{run}/", StringComparison.Ordinal) && o.Where.EndsWith("/env.txt", StringComparison.Ordinal)).Text
            .Split('\n').Single(l => l.StartsWith("HOSTNAME=", StringComparison.Ordinal));

        Assert.NotEqual(HostOf("envdump", fixture.SucceededRun), HostOf("cli", fixture.CliRun));
    }

    [Fact]
    public async Task A_step_gets_the_worker_secret_it_names_and_its_printed_value_is_masked_in_the_log()
    {
        var objects = await fixture.StoredObjectsAsync();
        string Object(string suffix) => objects.Single(o => o.Where.Contains($"/{fixture.SecretRun}/", StringComparison.Ordinal) && o.Where.EndsWith(suffix, StringComparison.Ordinal)).Text;

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(fixture.WorkflowSecret))), Object("/token.sha256").Trim());
        Assert.Contains("token is ***\n", Object("/use.log"), StringComparison.Ordinal);
        Assert.Contains("secrets: [API_TOKEN]", Object("/workflow.yaml"), StringComparison.Ordinal);
        output.WriteLine(fixture.AssertNoSecret(objects));
    }

    [Fact]
    public async Task A_step_that_names_a_secret_the_worker_lacks_fails_and_says_which_setting_to_add()
    {
        using var http = fixture.Server.Client(fixture.ReadKey);
        var tasks = await http.GetFromJsonAsync<JsonElement>($"/api/runs/{fixture.MissingSecretRun}/tasks?state=failed");
        var task = tasks.GetProperty("items")[0];

        Assert.Equal("failed", task.GetProperty("state").GetString());
        Assert.StartsWith(
            "step 'use' could not run: this worker has no secret NOT_ON_THIS_WORKER: set Secrets:NOT_ON_THIS_WORKER in its configuration, or PIPELINES_Secrets__NOT_ON_THIS_WORKER",
            task.GetProperty("error").GetString(),
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task Npgsql_leaves_the_password_out_of_the_connection_string_a_data_source_shows()
    {
        await using var db = NpgsqlDataSource.Create(fixture.Postgres);

        Assert.Contains(fixture.DbPassword, fixture.Postgres, StringComparison.Ordinal);
        Assert.DoesNotContain(fixture.DbPassword, db.ConnectionString, StringComparison.Ordinal);
        Assert.DoesNotContain("Password", db.ConnectionString, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("Host=127.0.0.1;Port=1;Username=postgres;Password={0};Database=pipelines;Timeout=2", "error: PostgreSQL: ", 5)]
    [InlineData("Host=127.0.0.1;Port={0};Password=x", "error: the PostgreSQL connection string (Postgres, or PIPELINES_POSTGRES) is not valid: the value of port cannot be used", 1)]
    [InlineData("Host=127.0.0.1;Password=ab;{0}=cd", "error: the PostgreSQL connection string (Postgres, or PIPELINES_POSTGRES) is not valid: write Key=value pairs", 1)]
    [InlineData("Host=127.0.0.1;Password=ab;{0}", "error: the PostgreSQL connection string (Postgres, or PIPELINES_POSTGRES) is not valid: write Key=value pairs", 1)]
    [InlineData("Host=127.0.0.1;Port=55432;Username=no_such_user;Password={0};Database=pipelines", "error: PostgreSQL: 28000: role \"no_such_user\" does not exist", 1)]
    public async Task A_server_with_a_bad_connection_string_says_so_in_one_line_without_any_of_it(string template, string expected, int exitCode)
    {
        var secret = fixture.DbPassword;
        var result = await CliRunner.RunAsync(
            ["server", "--urls", "http://127.0.0.1:9"],
            new Dictionary<string, string?> { ["PIPELINES_POSTGRES"] = string.Format(CultureInfo.InvariantCulture, template.Replace("Port=55432", "Port=" + new NpgsqlConnectionStringBuilder(TestEnvironment.Postgres).Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal), secret), ["PIPELINES_HOME"] = fixture.Temp.Combine("badpg") });

        // Unreachable is 5 (trying again may work: docs/cli.md), a refused or malformed one 1.
        Assert.Equal(exitCode, result.ExitCode);
        Assert.Single(result.Stderr.Trim().Split('\n'));
        Assert.StartsWith(expected, result.Stderr, StringComparison.Ordinal);
        output.WriteLine(fixture.AssertNoSecret([("pipelines server with a bad connection string", result.ToString())]));
    }

    [Fact]
    public async Task A_server_with_a_wrong_S3_secret_key_is_not_ready_and_refuses_runs_without_quoting_the_key()
    {
        var wrongS3 = "wrong-s3-secret-" + Guid.NewGuid().ToString("N");
        var env = new Dictionary<string, string?>(fixture.Env) { ["PIPELINES_S3__SecretKey"] = wrongS3, ["PIPELINES_HOME"] = fixture.Temp.Combine("wrong-s3"), ["PIPELINES_Server__Roles"] = "api" };

        // API only: it shares the fixture's queue, and must not take the other server's jobs.
        await using var server = await ServerProcess.StartAsync(env);
        using var http = server.Client(fixture.FullKey);

        var ready = await SecretsFixture.GetAsync(http, "/readyz");
        var submit = await SecretsFixture.PostJsonAsync(http, "/api/runs", new { workflow = fixture.EnvWorkflow });

        Assert.StartsWith("GET /readyz (503)", ready.Where, StringComparison.Ordinal);
        Assert.StartsWith("POST /api/runs (422)", submit.Where, StringComparison.Ordinal);
        var found = new List<(string Where, string Text)> { ready, submit, ("the server's log", server.Output) };
        Assert.DoesNotContain(found, f => f.Text.Contains(wrongS3, StringComparison.Ordinal));
        output.WriteLine(fixture.AssertNoSecret(found));
    }

    [Fact]
    public async Task A_server_with_a_too_short_access_key_names_its_position_not_the_key()
    {
        var shortKey = "sk-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        var result = await CliRunner.RunAsync(
            ["server", "--urls", "http://127.0.0.1:9"],
            new Dictionary<string, string?>(fixture.Env) { ["PIPELINES_Server__Keys__1__Key"] = shortKey, ["PIPELINES_HOME"] = fixture.Temp.Combine("short-key") });

        Assert.Equal(1, result.ExitCode);
        Assert.Equal("error: Server:Keys:1:Key must be at least 16 characters (e.g. `openssl rand -hex 24`)", result.Stderr.Trim());
        Assert.DoesNotContain(shortKey, result.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Settings_that_hold_a_secret_leave_it_out_when_formatted()
    {
        var s3 = new S3Settings("http://s3.example", "access", fixture.TestSecret, "us-east-1");
        var key = new Pipelines.Server.AccessKey(fixture.FullKey, Pipelines.Server.KeyRole.Full, "operator");

        Assert.Equal("S3Settings { Endpoint = http://s3.example, AccessKey = access, Region = us-east-1 }", s3.ToString());
        Assert.Equal("AccessKey { Role = Full, Name = operator, Tenant = default }", key.ToString());
        Assert.DoesNotContain(fixture.TestSecret, $"{s3} {s3 with { Region = "x" }}", StringComparison.Ordinal);
    }

    [Fact]
    public void A_step_of_one_tenant_never_gets_another_tenants_secret_and_hears_what_it_would_for_a_missing_one()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Secrets:SHARED_TOKEN"] = "default-value",
            ["Tenants:lab-a:Output"] = "s3://data/lab-a/",
            ["Tenants:lab-a:Secrets:A_TOKEN"] = "a-value",
            ["Tenants:lab-b:Output"] = "s3://data/lab-b/",
            ["Tenants:lab-b:Secrets:B_TOKEN"] = fixture.TestSecret,
        }).Build();
        var worker = Pipelines.Hosting.EngineSettings.Read(config).Worker;
        var labA = Pipelines.Tenancy.TenantId.Parse("lab-a", "test");
        string Refusal(Pipelines.Tenancy.TenantId tenant, string name) =>
            Assert.Throws<PipelinesException>(() => worker.SecretsFor(tenant, "use", [name])).Message.Replace(name, "X", StringComparison.Ordinal);

        Assert.Equal("a-value", worker.SecretsFor(labA, "use", ["A_TOKEN"])["A_TOKEN"]);
        Assert.Equal("default-value", worker.SecretsFor(Pipelines.Tenancy.TenantId.Default, "use", ["SHARED_TOKEN"])["SHARED_TOKEN"]);
        Assert.Equal(
            "this worker has no secret X: set Tenants:lab-a:Secrets:X in its configuration, or PIPELINES_Tenants__lab-a__Secrets__X (step 'use' asks for it)",
            Refusal(labA, "NOT_ANYWHERE"));
        Assert.Equal(Refusal(labA, "NOT_ANYWHERE"), Refusal(labA, "B_TOKEN"));
        Assert.Equal(Refusal(labA, "NOT_ANYWHERE"), Refusal(labA, "SHARED_TOKEN"));
        Assert.Equal(Refusal(Pipelines.Tenancy.TenantId.Default, "NOT_ANYWHERE"), Refusal(Pipelines.Tenancy.TenantId.Default, "A_TOKEN"));
        Assert.DoesNotContain(fixture.TestSecret, Refusal(labA, "B_TOKEN"), StringComparison.Ordinal);
    }

    [GeneratedRegex("/jobs/details/(?<id>[0-9]+)")]
    private static partial Regex JobLink();
}
