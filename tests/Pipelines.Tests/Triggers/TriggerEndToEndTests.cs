using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Npgsql;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;
using Pipelines.Tests.Telemetry;
using Xunit.Abstractions;

namespace Pipelines.Tests.Triggers;

/// <summary>
/// Bucket triggers as a user meets them: `pipelines register`, files dropped into Swift, and
/// `pipelines worker` processes (the real CLI) that start runs by themselves, against the real
/// PostgreSQL, Swift and Docker. Each test has its own schemas and bucket.
/// </summary>
[Integration]
public sealed class TriggerEndToEndTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly ObjectStoreFactory _stores = new(TestEnvironment.S3);
    private readonly TempFolder _temp = new();
    private readonly string _schema = TestEnvironment.NewName("e2t_");
    private readonly List<Process> _processes = [];
    private Dictionary<string, string?> _env = null!;
    private string _bucket = null!;
    private NpgsqlDataSource _db = null!;
    private PostgresRunStore _runs = null!;

    public async Task InitializeAsync()
    {
        _bucket = await TestEnvironment.NewBucketAsync(_stores.S3Client);
        _db = await TestEnvironment.PostgresAsync();
        _runs = new PostgresRunStore(_db, _schema);
        _env = new()
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = _schema,
            ["PIPELINES_Hangfire__Schema"] = _schema + "_hangfire",
            ["PIPELINES_HOME"] = _temp.Combine("home"),
            ["PIPELINES_Worker__Concurrency"] = "2",
            ["PIPELINES_Triggers__PollInterval"] = "1s",
        };
    }

    public async Task DisposeAsync()
    {
        foreach (var p in _processes)
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync();
            }

            p.Dispose();
        }

        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _db.DisposeAsync();
        _stores.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public async Task Dropped_files_start_runs_over_exactly_the_new_files_and_a_killed_trigger_process_loses_and_doubles_nothing()
    {
        var before = await UploadAsync("lane1/S001_R1.fastq", "lane1/S001_R2.fastq");
        await RegisterAsync();
        _processes.Add(CliRunner.Start(["worker", "--roles", "worker"], _env));
        var trigger = CliRunner.Start(["worker", "--roles", "triggers"], _env);
        _processes.Add(trigger);

        // A first drop: one run over exactly these six files, results gathered.
        var first = await UploadAsync(Files("lane1", 2, 4));
        var uploaded = DateTimeOffset.UtcNow;
        var run1 = Assert.Single(await WaitForRunsAsync(1));
        output.WriteLine($"upload to run start: {(run1.CreatedAt - uploaded).TotalSeconds:0.00}s (settle 2s, poll 1s)");
        Assert.Equal(first.Order(StringComparer.Ordinal), await InputsAsync(run1.RunId));
        var rows = await new RunFolder(_stores.Open(run1.OutputUri)).ResultAsync("stats");
        Assert.Equal(first.Order(StringComparer.Ordinal), rows.Select(r => (string)r["file"]!).Order(StringComparer.Ordinal));

        // A second drop: a second run with only the new files.
        var second = await UploadAsync(Files("lane2", 41, 42));
        uploaded = DateTimeOffset.UtcNow;
        var runs = await WaitForRunsAsync(2);
        var run2 = runs.Single(r => r.RunId != run1.RunId);
        output.WriteLine($"upload to run start: {(run2.CreatedAt - uploaded).TotalSeconds:0.00}s");
        Assert.Equal(second.Order(StringComparer.Ordinal), await InputsAsync(run2.RunId));

        // The trigger process dies with files seen but not settled; more land while it is down;
        // a new one picks everything up.
        var third = await UploadAsync(Files("lane2", 43, 44));
        await WaitUntilSeenAsync(third);
        trigger.Kill(entireProcessTree: true);
        await trigger.WaitForExitAsync();
        var fourth = await UploadAsync(Files("lane3", 81, 81));
        var fourthLanded = DateTimeOffset.UtcNow;
        await using var restarted = await ObservedClusterFixture.WorkerProcess.StartAsync("triggers", _env);

        var all = first.Concat(second).Concat(third).Concat(fourth).Order(StringComparer.Ordinal).ToList();
        var final = await WaitForInputsAsync(all.Count);

        // The trigger lag runs from when the objects landed in the bucket, not from when the new
        // process first saw them: it holds the time the trigger process was down and starting. The
        // bucket's Last-Modified is whole seconds (rounded up by Swift), hence a second's tolerance.
        RunRecord? fourthRun = null;
        foreach (var r in final)
        {
            fourthRun = (await InputsAsync(r.RunId)).Contains(fourth[0]) ? r : fourthRun;
        }

        using (var http = new HttpClient { BaseAddress = new Uri(restarted.Url), Timeout = TimeSpan.FromSeconds(30) })
        {
            var metrics = await http.GetStringAsync("/metrics");
            var lagSum = Sample(metrics, "pipelines_trigger_lag_seconds_sum");
            var atLeast = (fourthRun!.CreatedAt - fourthLanded).TotalSeconds - 1;
            output.WriteLine($"trigger lag of the restarted process: {lagSum:0.00}s in all, at least {atLeast:0.00}s expected");
            Assert.True(Sample(metrics, "pipelines_trigger_lag_seconds_count") >= 1, metrics);
            Assert.True(lagSum >= atLeast, $"lag {lagSum:0.00}s < {atLeast:0.00}s from the upload to the run's start");
        }
        var inputs = new List<string>();
        foreach (var r in final)
        {
            Assert.Equal(RunState.Succeeded, r.State);
            inputs.AddRange(await InputsAsync(r.RunId));
        }

        Assert.Equal(all, inputs.Order(StringComparer.Ordinal));
        Assert.DoesNotContain(before[0], inputs);

        var list = await CliRunner.RunAsync(["triggers"], _env);
        Assert.Equal(0, list.ExitCode);
        Assert.Contains($"fastq-stats-triggered: s3://{_bucket}/incoming/, settle 2.0s", list.Stdout, StringComparison.Ordinal);
        Assert.Contains($"objects seen: {all.Count} (0 pending), 2 there before registration, 0 rejected", list.Stdout, StringComparison.Ordinal);
        Assert.Contains($"runs started: {final.Count}, last ", list.Stdout, StringComparison.Ordinal);
        output.WriteLine(list.Stdout);
    }

    [Fact]
    public async Task The_same_event_ingested_twice_starts_one_task_and_bad_events_are_answered_clearly()
    {
        await RegisterAsync();
        var key = (await UploadAsync("lane1/S005_R1.fastq")).Single();
        var etag = (await _stores.Open($"s3://{_bucket}/").Store.StatAsync("incoming/" + key, CancellationToken.None))!.ETag!;
        var body = _temp.Write("event.json", S3EventParserTests.AwsEvent(_bucket, "incoming/" + key.Replace("/", "%2F", StringComparison.Ordinal), etag, 3291));

        var once = await CliRunner.RunAsync(["triggers", "ingest", body], _env);
        var twice = await CliRunner.RunAsync(["triggers", "ingest", body], _env);
        var unknown = await CliRunner.RunAsync(["triggers", "ingest", _temp.Write("unknown.json", S3EventParserTests.AwsEvent("no-such-bucket", "incoming/a.fastq", "e", 1))], _env);
        var escape = await CliRunner.RunAsync(["triggers", "ingest", _temp.Write("escape.json", S3EventParserTests.AwsEvent(_bucket, "incoming/../secret.fastq", "e", 1))], _env);
        var malformed = await CliRunner.RunAsync(["triggers", "ingest", _temp.Write("bad.json", "{\"Records\": [")], _env);

        Assert.True(once.ExitCode == 0, once.ToString());
        Assert.StartsWith("1 record(s): 1 accepted, 0 already recorded", once.Stdout, StringComparison.Ordinal);
        Assert.StartsWith("1 record(s): 0 accepted, 1 already recorded", twice.Stdout, StringComparison.Ordinal);
        Assert.Contains("rejected: no registered trigger watches bucket 'no-such-bucket'", unknown.Stdout, StringComparison.Ordinal);
        Assert.Contains("rejected: the key escapes the prefix", escape.Stdout, StringComparison.Ordinal);
        Assert.Equal(1, malformed.ExitCode);
        Assert.StartsWith("error: malformed event body: the body is not JSON", malformed.Stderr, StringComparison.Ordinal);

        // The watcher lists the same version too: still one run with one task over the one file.
        _processes.Add(CliRunner.Start(["worker"], _env));
        var run = Assert.Single(await WaitForInputsAsync(1));
        Assert.Equal([key], await InputsAsync(run.RunId));
        Assert.Equal(1, run.TaskCount);

        // A full listing after the run has ended saw the object's version in the ledger already and
        // recorded nothing new, so nothing is left to settle into another run.
        var ended = await ScalarAsync<DateTime>("SELECT now()");
        await WaitForSqlAsync($"SELECT last_full_at > @after FROM {_schema}.trigger_state", ("after", ended), "a full listing after the run ended");
        Assert.Equal(1L, await ScalarAsync<long>($"SELECT count(*) FROM {_schema}.trigger_objects WHERE key = @key", ("key", "incoming/" + key)));
        Assert.Single((await _runs.QueryRunsAsync(new RunQuery(Limit: 10), CancellationToken.None)).Items);
    }

    [Fact]
    public async Task Two_trigger_processes_on_one_ledger_start_each_object_once()
    {
        await RegisterAsync();
        _processes.Add(CliRunner.Start(["worker", "--roles", "triggers"], _env));
        _processes.Add(CliRunner.Start(["worker", "--roles", "triggers"], _env));
        _processes.Add(CliRunner.Start(["worker", "--roles", "worker"], _env));
        await WaitForSqlAsync($"SELECT last_poll_at IS NOT NULL FROM {_schema}.trigger_state", "the trigger processes' first poll");

        // Three drops, each seen by a poll before the next lands, so that the two processes meet
        // them in different cycles.
        var all = new List<string>();
        foreach (var lane in new[] { 11, 17, 23 })
        {
            var drop = await UploadAsync(Files("lane1", lane, lane + 2));
            all.AddRange(drop);
            await WaitUntilSeenAsync(drop);
        }

        var runs = await WaitForInputsAsync(all.Count);
        var inputs = new List<string>();
        foreach (var r in runs)
        {
            inputs.AddRange(await InputsAsync(r.RunId));
        }

        Assert.Equal(all.Order(StringComparer.Ordinal), inputs.Order(StringComparer.Ordinal));
        await using var cmd = _db.CreateCommand($"SELECT count(*) FILTER (WHERE state = 'started'), count(*) FROM {_schema}.trigger_batches");
        await using var reader = await cmd.ExecuteReaderAsync();
        await reader.ReadAsync();
        Assert.Equal(runs.Count, reader.GetInt64(0));
        Assert.Equal(runs.Count, reader.GetInt64(1));
        output.WriteLine($"{all.Count} files in {runs.Count} run(s) by two trigger processes");
    }

    /// <summary>Waits until a poll recorded every one of these files (relative to incoming/) in the ledger.</summary>
    private Task WaitUntilSeenAsync(IReadOnlyCollection<string> files) =>
        WaitForSqlAsync(
            $"SELECT count(DISTINCT key) = @n FROM {_schema}.trigger_objects WHERE key = ANY(@keys)",
            [("n", (long)files.Count), ("keys", files.Select(f => "incoming/" + f).ToArray())],
            $"the ledger to hold {string.Join(", ", files)}");

    private Task WaitForSqlAsync(string sql, (string Name, object Value) parameter, string what) => WaitForSqlAsync(sql, [parameter], what);

    /// <summary>Waits until SQL (one boolean) says true in this test's schema, at most a minute.</summary>
    private async Task WaitForSqlAsync(string sql, string what) => await WaitForSqlAsync(sql, [], what);

    private async Task WaitForSqlAsync(string sql, (string Name, object Value)[] parameters, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (await ScalarAsync<bool?>(sql, parameters) == true)
                {
                    return;
                }
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
            {
                // The schema is created by the first process to start.
            }

            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"waited a minute for {what}");
            await Task.Delay(100);
        }
    }

    private async Task<T> ScalarAsync<T>(string sql, params (string Name, object Value)[] parameters)
    {
        await using var cmd = _db.CreateCommand(sql);
        foreach (var (name, value) in parameters)
        {
            cmd.Parameters.AddWithValue(name, value);
        }

        var result = await cmd.ExecuteScalarAsync();
        return result is DBNull or null ? default! : (T)result;
    }

    /// <summary>The value of the one sample of <paramref name="name"/> (any labels; a timestamp after it is ignored) in a Prometheus exposition.</summary>
    private static double Sample(string exposition, string name)
    {
        var line = Assert.Single(exposition.Split('\n'), l => l.StartsWith(name + "{", StringComparison.Ordinal) || l.StartsWith(name + " ", StringComparison.Ordinal));
        var rest = line[name.Length] == '{' ? line[(line.LastIndexOf('}') + 1)..] : line[name.Length..];
        return double.Parse(rest.Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }

    private async Task RegisterAsync()
    {
        var result = await CliRunner.RunAsync(
            ["register", "workflows/fastq-stats-triggered.yaml",
             "--set", $"trigger.uri=s3://{_bucket}/incoming/", "--set", "trigger.settle=2s",
             "--set", $"output.uri=s3://{_bucket}/results/", "--set", "input.batch=5"],
            _env);
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    private static string[] Files(string lane, int from, int to) =>
        Enumerable.Range(from, to - from + 1).SelectMany(i => new[] { $"{lane}/S{i:D3}_R1.fastq", $"{lane}/S{i:D3}_R2.fastq" }).ToArray();

    private async Task<List<string>> UploadAsync(params string[] relative)
    {
        var incoming = _stores.Open($"s3://{_bucket}/incoming/");
        await Parallel.ForEachAsync(relative, async (f, ct) =>
            await incoming.Store.UploadAsync(incoming.Key(f), Path.Combine(TestEnvironment.SampleFastq, f), ct));
        return relative.ToList();
    }

    private async Task<List<string>> InputsAsync(string runId) =>
        (await _runs.GetTasksAsync(runId, CancellationToken.None)).SelectMany(t => t.Inputs).Select(i => i.Key).Order(StringComparer.Ordinal).ToList();

    /// <summary>Waits until at least this many runs exist and all have ended.</summary>
    private Task<List<RunRecord>> WaitForRunsAsync(int count) =>
        WaitAsync(runs => Task.FromResult(runs.Count >= count));

    /// <summary>Waits until the runs' tasks hold this many inputs and every run has ended.</summary>
    private Task<List<RunRecord>> WaitForInputsAsync(int inputs) =>
        WaitAsync(async runs =>
        {
            var n = 0;
            foreach (var r in runs)
            {
                n += (await InputsAsync(r.RunId)).Count;
            }

            return n >= inputs;
        });

    private async Task<List<RunRecord>> WaitAsync(Func<List<RunRecord>, Task<bool>> done)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(3))
        {
            try
            {
                var runs = (await _runs.QueryRunsAsync(new RunQuery(Limit: 100), CancellationToken.None)).Items.ToList();
                if (runs.All(r => r.State.IsTerminal()) && await done(runs))
                {
                    return runs.OrderBy(r => r.CreatedAt).ToList();
                }
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
            {
                // The schema is created by the first process to start.
            }

            await Task.Delay(250);
        }

        var trigger = await CliRunner.RunAsync(["triggers"], _env);
        throw new TimeoutException("the runs did not come in time\n" + trigger.Stdout + JsonSerializer.Serialize((await _runs.QueryRunsAsync(new RunQuery(Limit: 100), CancellationToken.None)).Items).ToString(CultureInfo.InvariantCulture));
    }
}
