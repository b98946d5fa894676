using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Docker.DotNet;
using Docker.DotNet.Models;
using Npgsql;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>
/// One `pipelines server` process with its own PostgreSQL schemas and its own bucket holding the
/// sample dataset. A fixture of the server collection (<see cref="ServerCollection"/>) is shared
/// by its classes for the whole run, so a test there names what it makes and looks only at that;
/// a class fixture is its class's own. Keys, when given, are configured through
/// PIPELINES_Server__Keys__N__* variables as an operator would.
/// </summary>
public class ServerFixture : IAsyncLifetime
{
    public const string ReadKey = "read-key-0123456789abcdef";
    public const string FullKey = "full-key-fedcba9876543210";

    private readonly string _schema = TestEnvironment.NewName("srv_");

    public ObjectStoreFactory Stores { get; } = new(TestEnvironment.S3);

    public TempFolder Temp { get; } = new();

    public string Bucket { get; private set; } = null!;

    public ServerProcess Server { get; private set; } = null!;

    public Dictionary<string, string?> Env { get; private set; } = null!;

    protected virtual bool WithKeys => false;

    /// <summary>The server's roles (all when empty); without the worker role a `pipelines worker` process runs the jobs.</summary>
    protected virtual IReadOnlyList<string> Roles => [];

    /// <summary>Whether the fixture starts that worker process; a test that starts its own workers says no.</summary>
    protected virtual bool StartsWorker => Roles.Count > 0 && !Roles.Contains("worker");

    /// <summary>Settings of a fixture of its own, added to <see cref="Env"/> before the server starts.</summary>
    protected virtual IReadOnlyDictionary<string, string?> MoreEnv => new Dictionary<string, string?>();

    private Process? _worker;

    public async Task InitializeAsync()
    {
        Bucket = await TestEnvironment.NewBucketAsync(Stores.S3Client);
        Env = new()
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = _schema,
            ["PIPELINES_Hangfire__Schema"] = _schema + "_hangfire",
            ["PIPELINES_HOME"] = Temp.Combine("home"),
            ["PIPELINES_Worker__Concurrency"] = "2",
            ["PIPELINES_Server__Bucket"] = Bucket,
        };
        foreach (var (k, v) in MoreEnv)
        {
            Env[k] = v;
        }

        if (WithKeys)
        {
            Env["PIPELINES_Server__Keys__0__Key"] = ReadKey;
            Env["PIPELINES_Server__Keys__0__Role"] = "read";
            Env["PIPELINES_Server__Keys__0__Name"] = "viewer";
            Env["PIPELINES_Server__Keys__1__Key"] = FullKey;
            Env["PIPELINES_Server__Keys__1__Role"] = "full";
            Env["PIPELINES_Server__Keys__1__Name"] = "operator";
        }

        var input = Stores.Open($"s3://{Bucket}/raw/");
        var files = Directory.EnumerateFiles(TestEnvironment.SampleFastq, "*", SearchOption.AllDirectories).ToList();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (f, ct) =>
            await input.Store.UploadAsync(input.Key(Path.GetRelativePath(TestEnvironment.SampleFastq, f)), f, ct));
        Server = await ServerProcess.StartAsync(Env, Roles.Count == 0 ? null : ["--roles", string.Join(",", Roles)]);
        if (StartsWorker)
        {
            _worker = CliRunner.Start(["worker"], Env);
        }
    }

    public async Task DisposeAsync()
    {
        if (_worker is { HasExited: false })
        {
            _worker.Kill(entireProcessTree: true);
            await _worker.WaitForExitAsync();
        }

        _worker?.Dispose();
        await Server.DisposeAsync();
        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        Stores.Dispose();
        Temp.Dispose();
    }

    /// <summary>The sample workflow over the bucket's dataset, 10 tasks of 20 files, writing under results/.</summary>
    public string StatsWorkflow => StatsWorkflowInto("results");

    /// <summary>
    /// The same, writing under a prefix of the caller's own. The task cache is kept per output
    /// root: two classes on one shared server writing this workflow under one prefix would take
    /// each other's results from the cache instead of running them.
    /// </summary>
    public string StatsWorkflowInto(string prefix) => File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "workflows", "fastq-stats.yaml"))
        .Replace("../sample-data/fastq/", $"s3://{Bucket}/raw/", StringComparison.Ordinal)
        .Replace("../output/fastq-stats/", $"s3://{Bucket}/{prefix}/", StringComparison.Ordinal)
        .Replace("batch: 10 ", "batch: 20 ", StringComparison.Ordinal);

    /// <summary>A workflow whose every task sleeps for two minutes: something to watch and cancel.</summary>
    public string SleepWorkflow => $$"""
        version: 1
        name: sleepy
        input:
          uri: s3://{{Bucket}}/raw/
          include: ["lane1/*.fastq"]
          batch: 10
        steps:
          - name: nap
            image: pipelines-samples/pair-check:1
            command: ["busybox", "sleep", "120"]
            resources: { cpus: 0.1, memory: 32Mi, timeout: 5m }
            retries: 2
            outputs: ["*.tsv"]
        output:
          uri: s3://{{Bucket}}/sleepy/
        """;

    public static async Task<string> SubmitAsync(HttpClient http, string yaml)
    {
        using var response = await http.PostAsJsonAsync("/api/runs", new { workflow = yaml });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("runId").GetString()!;
    }

    public static async Task<JsonElement> GetRunAsync(HttpClient http, string runId)
    {
        using var response = await http.GetAsync($"/api/runs/{runId}");
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
    }

    /// <summary>Polls the run until <paramref name="done"/> holds; fails after <paramref name="limit"/>.</summary>
    public static async Task<JsonElement> WaitForAsync(HttpClient http, string runId, Func<JsonElement, bool> done, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var run = await GetRunAsync(http, runId);
            if (done(run))
            {
                return run;
            }

            Assert.True(clock.Elapsed < limit, $"run {runId} did not get there within {limit}: {run}");
            await Task.Delay(250);
        }
    }

    public static async Task<IList<ContainerListResponse>> ContainersOfAsync(string runId)
    {
        using var client = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        return await client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { ["org.pipelines.run=" + runId] = true } },
        });
    }
}

/// <summary>The same, with the API role alone: every task runs on worker processes the test starts.</summary>
public sealed class ApiServerFixture : ServerFixture
{
    protected override IReadOnlyList<string> Roles => ["api"];

    protected override bool StartsWorker => false;
}

/// <summary>The same, with a read key and a full key configured.</summary>
public sealed class KeyedServerFixture : ServerFixture
{
    protected override bool WithKeys => true;
}

/// <summary>The server/worker split: a server with the api role only, and a `pipelines worker` process running every job.</summary>
public sealed class SplitServerFixture : ServerFixture
{
    protected override IReadOnlyList<string> Roles => ["api"];
}

/// <summary>
/// The same, whose workers hold a task they may not start for <see cref="AdmissionHold"/> before
/// they hand it back (Harvest:AdmissionHold, 10 s by default): a drain test waits for held tasks
/// to be handed back, and need not wait 10 s for each.
/// </summary>
public sealed class ShortHoldServerFixture : ServerFixture
{
    public static readonly TimeSpan AdmissionHold = TimeSpan.FromSeconds(2);

    protected override IReadOnlyDictionary<string, string?> MoreEnv => new Dictionary<string, string?>
    {
        ["PIPELINES_Harvest__AdmissionHold"] = AdmissionHold.ToString("c", System.Globalization.CultureInfo.InvariantCulture),
    };
}
