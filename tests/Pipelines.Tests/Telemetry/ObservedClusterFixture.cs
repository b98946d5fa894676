using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Telemetry;

/// <summary>
/// What an operator runs and watches: a `pipelines server` (api, dashboard, triggers), two
/// `pipelines worker` processes each with its health and metrics listener, and a real Prometheus
/// scraping all three every second. Before the tests look, real work has been done through
/// them: a batch run of many tasks through the API, a triggered run over dropped files, and a
/// function deployed and invoked (answered, and refused).
/// </summary>
public sealed partial class ObservedClusterFixture : IAsyncLifetime
{
    private readonly string _schema = TestEnvironment.NewName("obs_");
    private readonly List<WorkerProcess> _workers = [];

    public ObjectStoreFactory Stores { get; } = new(TestEnvironment.S3);

    public TempFolder Temp { get; } = new();

    public string Bucket { get; private set; } = null!;

    public ServerProcess Server { get; private set; } = null!;

    public PrometheusProcess Prometheus { get; private set; } = null!;

    public Dictionary<string, string?> Env { get; private set; } = null!;

    /// <summary>The workers' listeners, http://127.0.0.1:PORT.</summary>
    public IReadOnlyList<string> WorkerUrls => _workers.Select(w => w.Url).ToList();

    /// <summary>The batch run submitted through the API.</summary>
    public string RunId { get; private set; } = null!;

    /// <summary>Every run that ended (the batch run and the triggered one), as the run store has them.</summary>
    public IReadOnlyList<RunRecord> Runs { get; private set; } = [];

    /// <summary>The highest queue depth Prometheus saw while the batch run's tasks were queued.</summary>
    public double PeakQueueDepth { get; private set; }

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
            ["PIPELINES_Functions__Output"] = $"s3://{Bucket}/functions/",
            ["PIPELINES_Docker__WarmRoot"] = Temp.Combine("warm"),
            ["PIPELINES_Triggers__PollInterval"] = "1s",
            ["PIPELINES_Telemetry__QueueInterval"] = "00:00:01",
        };

        var input = Stores.Open($"s3://{Bucket}/raw/");
        var files = Directory.EnumerateFiles(TestEnvironment.SampleFastq, "*", SearchOption.AllDirectories).ToList();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (f, ct) =>
            await input.Store.UploadAsync(input.Key(Path.GetRelativePath(TestEnvironment.SampleFastq, f)), f, ct));

        // Started side by side: the server, then both workers at once (each makes nothing the other waits for).
        Server = await ServerProcess.StartAsync(Env, ["--roles", "api,dashboard,triggers"]);
        _workers.AddRange(await Task.WhenAll(Enumerable.Range(0, 2).Select(i =>
            WorkerProcess.StartAsync(new Dictionary<string, string?>(Env) { ["PIPELINES_Docker__WarmRoot"] = Temp.Combine($"warm-w{i}") }))));

        Prometheus = await PrometheusProcess.StartAsync(new Dictionary<string, IReadOnlyList<string>>
        {
            ["pipelines-server"] = [new Uri(Server.Url).Authority],
            ["pipelines-worker"] = _workers.Select(w => new Uri(w.Url).Authority).ToList(),
        });
        await Prometheus.WaitForAsync("sum(up)", v => v == 3, TimeSpan.FromSeconds(30));

        using var http = Server.Client();
        await BatchRunAsync(http);
        await TriggeredRunAsync();
        await FunctionAsync(http);

        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        Runs = (await new PostgresRunStore(db, _schema).QueryRunsAsync(new RunQuery(), CancellationToken.None)).Items;
    }

    /// <summary>/metrics of every process, as Prometheus scrapes it.</summary>
    public async Task<IReadOnlyList<(string Process, string Text)>> ScrapeAllAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var list = new List<(string, string)> { ("server", await http.GetStringAsync(Server.Url + "/metrics")) };
        foreach (var url in WorkerUrls)
        {
            list.Add((url, await http.GetStringAsync(url + "/metrics")));
        }

        return list;
    }

    /// <summary>The names of the samples in an exposition (histograms' _bucket, _sum and _count included).</summary>
    public static HashSet<string> SampleNames(string exposition) =>
        exposition.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => SampleName().Match(l).Value).ToHashSet(StringComparer.Ordinal);

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*")]
    private static partial Regex SampleName();

    /// <summary>
    /// The sample workflow in tasks of 10 files: 20 tasks for 4 worker slots, so that the queue
    /// holds jobs for a while, watched through Prometheus until it has drained.
    /// </summary>
    private async Task BatchRunAsync(HttpClient http)
    {
        var yaml = File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "workflows", "fastq-stats.yaml"))
            .Replace("../sample-data/fastq/", $"s3://{Bucket}/raw/", StringComparison.Ordinal)
            .Replace("../output/fastq-stats/", $"s3://{Bucket}/results/", StringComparison.Ordinal);
        RunId = await ServerFixture.SubmitAsync(http, yaml);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            PeakQueueDepth = Math.Max(PeakQueueDepth, await Prometheus.ValueAsync("max(pipelines_queue_depth{queue=\"default\"})") ?? 0);
            var run = await ServerFixture.GetRunAsync(http, RunId);
            var state = run.GetProperty("state").GetString();
            if (state is "succeeded" or "failed" or "cancelled")
            {
                Assert.True(state == "succeeded", run.ToString());
                return;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(5), "the batch run did not end in 5 minutes: " + run);
            await Task.Delay(250);
        }
    }

    /// <summary>A registered workflow and files dropped under its trigger.uri: a run starts over them.</summary>
    private async Task TriggeredRunAsync()
    {
        var register = await CliRunner.RunAsync(
            ["register", "workflows/fastq-stats-triggered.yaml",
             "--set", $"trigger.uri=s3://{Bucket}/incoming/", "--set", "trigger.settle=1s",
             "--set", $"output.uri=s3://{Bucket}/triggered/", "--set", "input.batch=5"],
            Env);
        Assert.True(register.ExitCode == 0, register.ToString());
        var incoming = Stores.Open($"s3://{Bucket}/incoming/");
        foreach (var f in new[] { "lane1/S001_R1.fastq", "lane1/S001_R2.fastq" })
        {
            await incoming.Store.UploadAsync(incoming.Key(f), Path.Combine(TestEnvironment.SampleFastq, f), CancellationToken.None);
        }

        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        var runs = new PostgresRunStore(db, _schema);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var all = (await runs.QueryRunsAsync(new RunQuery(), CancellationToken.None)).Items;
            if (all.Count >= 2 && all.All(r => r.State.IsTerminal()))
            {
                return;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(3), "the triggered run did not end in 3 minutes\n" + Server.Output);
            await Task.Delay(500);
        }
    }

    /// <summary>Two functions deployed and invoked: one request answered, one refused (two files where the command takes one).</summary>
    private static async Task FunctionAsync(HttpClient http)
    {
        await DeployAsync(http, "name: wordcount\nimage: pipelines-examples/warm-fork:1\ncommand: [\"wordcount\"]\noutput: counts.tsv\nmax: 1\n");
        await DeployAsync(http, "name: single\nimage: pipelines-examples/warm-fork:1\ncommand: [\"cp\", \"{input}\", \"/out/copy\"]\n");
        using (var answered = await http.PostAsync("/api/functions/wordcount/invoke?filename=words.txt", new StringContent("one two three")))
        {
            Assert.True(answered.StatusCode == HttpStatusCode.OK, await answered.Content.ReadAsStringAsync());
        }

        using var two = new MultipartFormDataContent
        {
            { new StringContent("a"), "file", "a.txt" },
            { new StringContent("b"), "file", "b.txt" },
        };
        using var refused = await http.PostAsync("/api/functions/single/invoke", two);
        Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, await refused.Content.ReadAsStringAsync());
    }

    private static async Task DeployAsync(HttpClient http, string yaml)
    {
        using var deployed = await http.PostAsync("/api/functions", new StringContent(yaml, Encoding.UTF8, "application/yaml"));
        Assert.True(deployed.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK, await deployed.Content.ReadAsStringAsync());
    }

    public async Task DisposeAsync()
    {
        if (Prometheus is not null)
        {
            await Prometheus.DisposeAsync();
        }

        foreach (var w in _workers)
        {
            await w.DisposeAsync();
        }

        if (Server is not null)
        {
            await Server.DisposeAsync();
        }

        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        Stores.Dispose();
        Temp.Dispose();
    }

    /// <summary>A `pipelines worker` process and the address its start line names for its listener.</summary>
    public sealed class WorkerProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();

        private WorkerProcess(Process process) => _process = process;

        public string Url { get; private set; } = "";

        /// <summary>The worker's name, from its start line (<c>worker NAME started ...</c>).</summary>
        public string Name { get; private set; } = "";

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        public static Task<WorkerProcess> StartAsync(IDictionary<string, string?> env, params string[] more) => StartAsync("worker", env, more);

        /// <summary>Starts `pipelines worker --roles <paramref name="roles"/>` and waits for its start line (with its listener's address).</summary>
        public static async Task<WorkerProcess> StartAsync(string roles, IDictionary<string, string?> env, params string[] more)
        {
            var worker = new WorkerProcess(CliRunner.Start(["worker", "--roles", roles, .. more], env));
            var started = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            void Line(string? line)
            {
                if (line is null)
                {
                    return;
                }

                lock (worker._output)
                {
                    worker._output.AppendLine(line);
                }

                if (line.StartsWith("worker ", StringComparison.Ordinal) && line.Contains(" started ", StringComparison.Ordinal))
                {
                    started.TrySetResult(line);
                }
            }

            worker._process.OutputDataReceived += (_, e) => Line(e.Data);
            worker._process.ErrorDataReceived += (_, e) => Line(e.Data);
            worker._process.BeginOutputReadLine();
            worker._process.BeginErrorReadLine();
            var exited = worker._process.WaitForExitAsync();
            var first = await Task.WhenAny(started.Task, exited, Task.Delay(TimeSpan.FromSeconds(60)));
            Assert.True(first == started.Task, "the worker did not start:\n" + worker.Output);
            var match = Regex.Match(started.Task.Result, "health and metrics on (http://[0-9.]+:[0-9]+)");
            worker.Url = match.Success ? match.Groups[1].Value : "";
            worker.Name = started.Task.Result.Split(' ')[1];
            return worker;
        }

        /// <summary>Waits for the process to end (a worker refused at start), with its exit code.</summary>
        public async Task<int> ExitCodeAsync(TimeSpan limit)
        {
            await _process.WaitForExitAsync(new CancellationTokenSource(limit).Token);
            return _process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            await CliRunner.StopAsync(_process, TimeSpan.FromSeconds(40));
            _process.Dispose();
        }
    }
}
