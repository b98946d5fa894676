using System.Diagnostics;
using System.Text;
using Npgsql;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Faults;

/// <summary>
/// Stops a service the tests share (PostgreSQL, the S3 server, the Docker engine), so its tests
/// run alone, after every parallel collection (xunit's DisableParallelization).
/// </summary>
[CollectionDefinition("faults", DisableParallelization = true)]
public sealed class FaultsCollection;

/// <summary>
/// An outage is not a failure: a real run on PostgreSQL with a real `pipelines worker` process
/// goes on while a real service is stopped and started under it (scripts/services), and ends
/// with every task succeeded exactly once, no batch split, and the CLI following it to the end.
/// </summary>
[Collection("faults")]
[Integration]
public sealed class OutageTests : IAsyncLifetime
{
    private readonly TempFolder _temp = new();
    private readonly string _schema = TestEnvironment.NewName("fault_");
    private readonly List<Process> _processes = [];
    private readonly ObjectStoreFactory _stores = new(TestEnvironment.S3);
    private Dictionary<string, string?> _env = null!;
    private NpgsqlDataSource _db = null!;
    private PostgresRunStore _store = null!;

    public async Task InitializeAsync()
    {
        _env = new()
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = _schema,
            ["PIPELINES_Hangfire__Schema"] = _schema + "_hangfire",
            ["PIPELINES_HOME"] = _temp.Combine("home"),
        };
        _db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        _store = new PostgresRunStore(_db, _schema);
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

        // Whatever happened, the shared services are up again for the tests after these.
        await ServicesAsync("start");
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _db.DisposeAsync();
        _stores.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public async Task PostgreSQL_restarted_twice_mid_run_the_workers_reconnect_and_the_CLI_follows_the_run_to_its_end()
    {
        var (workflow, files) = await LocalWorkflowAsync(10);
        Start(["worker", "--concurrency", "2"]);
        var wall = Stopwatch.StartNew();
        var run = Start(["run", workflow, "--local-workers", "0"]);

        await WaitForSucceededAsync(1, run);
        await ServicesAsync("stop", "postgres");
        await ServicesAsync("start", "postgres");
        await WaitForSucceededAsync(4, run);
        await ServicesAsync("stop", "postgres");
        await ServicesAsync("start", "postgres");

        var (exit, stdout, stderr) = await EndAsync(run);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains("lost the run store for a moment", stderr, StringComparison.Ordinal);
        await AssertEveryTaskOnceAsync(RunFolder.RunIdFrom(new CliRunner.Result(exit, stdout, stderr)), files, "PostgreSQL restarted twice mid-run (10 tasks, 2 workers' slots)", wall.Elapsed);

        // No job is left fetched and unprocessed. The run ends inside its gather job, and the CLI
        // exits on that end while Hangfire may still be removing the gather job's queue row: a row
        // still fetched is looked at again until it is gone, for far less than the invisibility
        // timeout (5 min) after which a stuck one would be delivered again. A fetch the restart
        // cut off (committed, never received) is handed back by the queue watchdog 30 s after the
        // database's start (QueueWatchdog rule C), and then runs as a no-op.
        await using var cmd = _db.CreateCommand($"""
            SELECT q.id || ' job ' || q.jobid || ' ' || coalesce(j.statename, '?') || ' fetched ' || q.fetchedat || ' (database started ' || pg_postmaster_start_time() || ')'
            FROM {_schema}_hangfire.jobqueue q LEFT JOIN {_schema}_hangfire.job j ON j.id = q.jobid WHERE q.fetchedat IS NOT NULL
            """);
        async Task<List<string>> FetchedAsync()
        {
            var rows = new List<string>();
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync())
            {
                rows.Add(r.GetString(0));
            }

            return rows;
        }

        var fetched = await FetchedAsync();
        for (var settle = Stopwatch.StartNew(); fetched.Count > 0 && settle.Elapsed < TimeSpan.FromSeconds(60); fetched = await FetchedAsync())
        {
            await Task.Delay(200);
        }

        Assert.True(fetched.Count == 0, "queue rows still fetched: " + string.Join("; ", fetched) + Printed());
    }

    [Fact]
    public async Task The_S3_server_stopped_mid_run_until_the_worker_backs_off_twice_fails_and_splits_nothing()
    {
        var bucket = await TestEnvironment.NewBucketAsync(_stores.S3Client);
        var input = _stores.Open($"s3://{bucket}/in/");
        var files = new Dictionary<string, long>();
        for (var i = 0; i < 8; i++)
        {
            var content = Encoding.UTF8.GetBytes(new string('x', 100 + i));
            await input.Store.PutAsync(input.Key($"f{i}.txt"), content, "text/plain", CancellationToken.None);
            files[$"f{i}.txt"] = content.Length;
        }

        var workflow = Workflow($"s3://{bucket}/in/", $"s3://{bucket}/out/", batch: 2);
        var worker = Start(["worker", "--concurrency", "2"]);
        var wall = Stopwatch.StartNew();
        var run = Start(["run", workflow, "--local-workers", "0"]);

        await WaitForSucceededAsync(1, run);
        await ServicesAsync("stop", "swift");
        var stopped = Stopwatch.StartNew();

        // The fault is an outage that outlasts the S3 client's own retries while tasks want to
        // stage in and out: it lasts until a job of the worker has met it three times, waiting
        // 1 s and then 2 s in between (Worker/OutageGate's backoff), which is what this test is
        // about; a longer outage only waits longer.
        var paused = await WaitForOutputAsync(worker, "(attempt 3), and taking no new work until then", TimeSpan.FromMinutes(2));
        await ServicesAsync("start", "swift");

        var (exit, stdout, stderr) = await EndAsync(run);
        Assert.True(exit == 0, stdout + stderr);
        Assert.True(stopped.Elapsed >= TimeSpan.FromSeconds(3), $"the outage lasted {stopped.Elapsed}");
        Assert.Contains("worker paused: ", paused, StringComparison.Ordinal);
        var runId = RunFolder.RunIdFrom(new CliRunner.Result(exit, stdout, stderr));
        var tasks = await _store.GetTasksAsync(runId, CancellationToken.None);
        Assert.Equal(4, tasks.Count);
        Assert.All(tasks, t => Assert.Equal(TaskState.Succeeded, t.State));
        var provenance = await _store.GetProvenanceAsync(runId, CancellationToken.None);
        Assert.Equal(4, provenance.Count);
        Assert.All(provenance, p => Assert.Equal(1, p.Attempt));
        var sizes = await new RunFolder(_stores.Open($"s3://{bucket}/out/").Child(runId)).ResultAsync("sizes");
        Assert.Equal(files.Values.Order(), sizes.Select(r => (long)r["bytes"]!).Order());
        Report($"the S3 server stopped mid-run for {stopped.Elapsed.TotalSeconds:0} s, until a job had backed off twice (4 batches of 2)", wall.Elapsed, tasks.Count, provenance.Count, sizes.Count);
    }

    [Fact]
    public async Task The_Docker_engine_restarted_mid_run_fails_no_task()
    {
        var (workflow, files) = await LocalWorkflowAsync(6);
        Start(["worker", "--concurrency", "2"]);
        var wall = Stopwatch.StartNew();
        var run = Start(["run", workflow, "--local-workers", "0"]);

        await WaitForRunningAsync(run);
        await ServicesAsync("stop", "docker");
        await ServicesAsync("start", "docker");

        var (exit, stdout, stderr) = await EndAsync(run);
        Assert.True(exit == 0, stdout + stderr);
        await AssertEveryTaskOnceAsync(RunFolder.RunIdFrom(new CliRunner.Result(exit, stdout, stderr)), files, "the Docker engine restarted while steps ran (6 tasks)", wall.Elapsed);
    }

    [Fact]
    public async Task The_server_stopped_and_started_again_mid_run_completes_the_run()
    {
        var (workflow, files) = await LocalWorkflowAsync(8);
        var wall = Stopwatch.StartNew();
        var server = await ServerProcess.StartAsync(_env);
        var run = Start(["run", workflow, "--local-workers", "0"]);
        try
        {
            await WaitForSucceededAsync(1, run);
        }
        finally
        {
            // As an operator stops it (SIGTERM): its running steps are abandoned and delivered again.
            await server.DisposeAsync();
        }

        await using var again = await ServerProcess.StartAsync(_env);
        var (exit, stdout, stderr) = await EndAsync(run);
        Assert.True(exit == 0, stdout + stderr);
        await AssertEveryTaskOnceAsync(RunFolder.RunIdFrom(new CliRunner.Result(exit, stdout, stderr)), files, "the server (every role) stopped and started again mid-run (8 tasks)", wall.Elapsed);
    }

    /// <summary>One line per fault for docs/reliability.md, kept as .build/test-results/faults.md.</summary>
    internal static void Report(string fault, TimeSpan wall, int tasks, int provenanceRows, int resultRows)
    {
        var path = Path.Combine(TestEnvironment.RepoRoot, ".build", "test-results", "faults.md");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        lock (typeof(OutageTests))
        {
            File.AppendAllText(path, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"| {fault} | {wall.TotalSeconds:0.0} | {tasks} | {provenanceRows} | {resultRows} | 0 |\n"));
        }
    }

    private async Task AssertEveryTaskOnceAsync(string runId, Dictionary<string, long> files, string fault, TimeSpan wall)
    {
        var tasks = await _store.GetTasksAsync(runId, CancellationToken.None);
        Assert.Equal(files.Count, tasks.Count);
        Assert.All(tasks, t => Assert.Equal(TaskState.Succeeded, t.State));
        var provenance = await _store.GetProvenanceAsync(runId, CancellationToken.None);
        Assert.Equal(files.Count, provenance.Count);
        Assert.Equal(files.Keys.Order(StringComparer.Ordinal), provenance.Select(p => p.Inputs.Single().Key).Order(StringComparer.Ordinal));
        var sizes = await new RunFolder(_stores.Open(_temp.Combine("out")).Child(runId)).ResultAsync("sizes");
        Assert.Equal(files.Values.Order(), sizes.Select(r => (long)r["bytes"]!).Order());
        Report(fault, wall, tasks.Count, provenance.Count, sizes.Count);
    }

    private async Task<(string Workflow, Dictionary<string, long> Files)> LocalWorkflowAsync(int count)
    {
        var input = _temp.Combine("in");
        Directory.CreateDirectory(input);
        var files = new Dictionary<string, long>();
        for (var i = 0; i < count; i++)
        {
            var text = new string('y', 50 + i);
            await File.WriteAllTextAsync(Path.Combine(input, $"f{i:00}.txt"), text);
            files[$"f{i:00}.txt"] = text.Length;
        }

        return (Workflow(input, _temp.Combine("out"), batch: 1), files);
    }

    private string Workflow(string input, string output, int batch) => _temp.Write($"fault-{Guid.NewGuid():N}.yaml", $$"""
        version: 1
        name: fault
        input:
          uri: {{input}}
          batch: {{batch}}
        steps:
          - name: size
            image: pipelines-samples/pair-check:1
            command: ["sh", "-c", "sleep 2; for f in \"$@\"; do wc -c < $f; done > /out/size.txt", "sh", "{inputs}"]
            outputs: ["size.txt"]
        gather:
          - name: sizes
            from: size/size.txt
            header: false
            columns: [bytes]
        output:
          uri: {{output}}
        """);

    private readonly Dictionary<Process, (StringBuilder Out, StringBuilder Err)> _output = [];

    /// <summary>
    /// Starts the CLI and reads its output as it comes: a worker that logs a PostgreSQL restart
    /// into a pipe nobody reads fills the pipe and blocks on its next write.
    /// </summary>
    private Process Start(IEnumerable<string> args)
    {
        var p = CliRunner.Start(args, _env);
        var captured = (Out: new StringBuilder(), Err: new StringBuilder());
        p.OutputDataReceived += (_, e) => Append(p, captured.Out, e.Data);
        p.ErrorDataReceived += (_, e) => Append(p, captured.Err, e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
        _output[p] = captured;
        return p;
    }

    /// <summary>The last lines every process of the test printed, for a failure's message.</summary>
    private string Printed()
    {
        var text = new StringBuilder();
        foreach (var (p, (o, e)) in _output)
        {
            string Tail(StringBuilder sb)
            {
                lock (sb)
                {
                    var all = sb.ToString();
                    return all.Length > 6000 ? "..." + all[^6000..] : all;
                }
            }

            text.Append($"\n--- {string.Join(' ', p.StartInfo.ArgumentList.Skip(1).Take(2))} (pid {p.Id}) stdout:\n{Tail(o)}--- stderr:\n{Tail(e)}");
        }

        return text.ToString();
    }

    private void Append(Process p, StringBuilder sb, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (sb)
        {
            sb.AppendLine(line);
        }

        // After the line is in: a waiter that came before it is told here, one that comes after finds it.
        lock (_awaited)
        {
            foreach (var (process, text, seen) in _awaited)
            {
                if (process == p && line.Contains(text, StringComparison.Ordinal))
                {
                    seen.TrySetResult(line);
                }
            }
        }
    }

    private readonly List<(Process Process, string Text, TaskCompletionSource<string> Seen)> _awaited = [];

    /// <summary>The first line the process printed (stdout or stderr) that holds TEXT, waiting for it at most LIMIT.</summary>
    private async Task<string> WaitForOutputAsync(Process p, string text, TimeSpan limit)
    {
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_awaited)
        {
            var printed = (Output(p, error: false) + Output(p, error: true)).Split('\n').FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
            if (printed is not null)
            {
                return printed;
            }

            _awaited.Add((p, text, seen));
        }

        try
        {
            return await seen.Task.WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"waited {limit} for \"{text}\"; the process printed:\n{Output(p, error: false)}{Output(p, error: true)}");
        }
    }

    private string Output(Process p, bool error)
    {
        var sb = error ? _output[p].Err : _output[p].Out;
        lock (sb)
        {
            return sb.ToString();
        }
    }

    private async Task<(int Exit, string Stdout, string Stderr)> EndAsync(Process run)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        try
        {
            await run.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            // Say where every process of the test was, not only that the time ran out.
            var said = string.Join("\n", _output.Keys.Select(p => $"--- pipelines {string.Join(' ', p.StartInfo.ArgumentList)}:\n{Output(p, error: false)}\n{Output(p, error: true)}"));
            Assert.Fail($"the run did not end within 4 minutes:\n{said}");
        }

        run.WaitForExit();
        return (run.ExitCode, Output(run, error: false), Output(run, error: true));
    }

    private Task WaitForSucceededAsync(int count, Process run) => WaitForAsync(run, async () =>
    {
        var runs = (await _store.QueryRunsAsync(new RunQuery(Limit: 1), CancellationToken.None)).Items;
        return runs.Count > 0 && (await _store.CountTasksAsync(runs[0].RunId, CancellationToken.None)).Succeeded >= count;
    });

    private Task WaitForRunningAsync(Process run) => WaitForAsync(run, async () =>
    {
        var runs = (await _store.QueryRunsAsync(new RunQuery(Limit: 1), CancellationToken.None)).Items;
        return runs.Count > 0 && (await _store.CountTasksAsync(runs[0].RunId, CancellationToken.None)).Running > 0;
    });

    private async Task WaitForAsync(Process run, Func<Task<bool>> probe)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(2))
        {
            if (run.HasExited)
            {
                throw new InvalidOperationException($"pipelines run ended early with {run.ExitCode}{Printed()}");
            }

            try
            {
                if (await probe())
                {
                    return;
                }
            }
            catch (NpgsqlException)
            {
                // PostgreSQL is coming back: look again.
            }

            await Task.Delay(200);
        }

        throw new TimeoutException("the run did not get there in 2 minutes" + Printed());
    }

    private async Task ServicesAsync(params string[] args)
    {
        await HostCommand.CheckAsync(Path.Combine(TestEnvironment.RepoRoot, "scripts", "services"), args);

        // This test's own pooled connections died with a restarted PostgreSQL.
        _db.Clear();
    }
}
