using System.Diagnostics;
using System.Globalization;
using Docker.DotNet;
using Docker.DotNet.Models;
using Npgsql;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.Support;
using Pipelines.Usage;
using Xunit.Abstractions;
using TaskState = Pipelines.RunStore.TaskState;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// At-least-once delivery with a commit that happens once: a worker killed with SIGKILL in the
/// middle of a task leaves its Hangfire job fetched. With the default 5-minute invisibility
/// timeout, the queue watchdog of the live worker notices the dead server and hands the job
/// back, the task's lease expires, and the live worker runs the task and commits it within a
/// minute; the run counts it once, and the dead worker's container and scratch folder are
/// removed by the live worker's cleanup of leftovers.
/// </summary>
[Integration]
public sealed partial class WorkerCrashTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly TempFolder _temp = new();
    private readonly string _schema = TestEnvironment.NewName("crash_");
    private readonly List<Process> _processes = [];
    private Dictionary<string, string?> _env = null!;

    public Task InitializeAsync()
    {
        _env = new()
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = _schema,
            ["PIPELINES_Hangfire__Schema"] = _schema + "_hangfire",
            ["PIPELINES_Worker__Scratch"] = _temp.Combine("scratch"),
            ["PIPELINES_HOME"] = _temp.Combine("home"),
        };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var p in _processes)
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
            }

            p.Dispose();
        }

        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        _temp.Dispose();
    }

    [Fact]
    public async Task A_task_whose_worker_is_killed_runs_on_the_live_worker_within_a_minute_and_is_counted_once_with_its_lost_delivery_recorded_vacated()
    {
        var (workflow, input, results) = SlowWorkflow("crash", ["a.fastq"], seconds: 6);

        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await new PostgresSchema(db, _schema).CreateAsync(CancellationToken.None);
        var store = new PostgresRunStore(db, _schema);
        var first = Start(["worker", "--concurrency", "1"]);
        var run = Start(["run", workflow, "--local-workers", "0"]);
        var task = await WaitForAsync(async () =>
        {
            var runs = (await store.QueryRunsAsync(new RunQuery(Limit: 1), CancellationToken.None)).Items;
            return runs.Count == 0 ? null : (await store.GetTasksAsync(runs[0].RunId, CancellationToken.None)).FirstOrDefault(t => t.State == TaskState.Running);
        });
        Assert.EndsWith(":" + first.Id.ToString(CultureInfo.InvariantCulture), task.Worker, StringComparison.Ordinal);

        // Kill while the step's container runs (the task is marked running before staging).
        using var docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        var byRun = new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { ["org.pipelines.run=" + task.RunId] = true } },
        };
        var deadContainer = await WaitForAsync(async () => (await docker.Containers.ListContainersAsync(byRun)).FirstOrDefault());
        Assert.Contains("/" + first.Id.ToString(CultureInfo.InvariantCulture) + "/", deadContainer.Labels["org.pipelines.owner"], StringComparison.Ordinal);

        // The killed worker's scratch folder, marked with its owner.
        var deadScratch = Assert.Single(Directory.EnumerateDirectories(_temp.Combine("scratch")));

        // SIGKILL: no shutdown, no requeue, no lease release. The job stays fetched (the default
        // invisibility timeout is 5 minutes) until the watchdog sees the dead server.
        first.Kill(entireProcessTree: true);
        await first.WaitForExitAsync();
        var killed = Stopwatch.StartNew();
        var second = Start(["worker", "--concurrency", "1"]);
        var secondName = ":" + second.Id.ToString(CultureInfo.InvariantCulture);

        var taken = await WaitForAsync(
            async () => await store.GetTaskAsync(task.RunId, task.Index, CancellationToken.None) is { Worker: { } w } t && w.EndsWith(secondName, StringComparison.Ordinal) ? t : null,
            TimeSpan.FromSeconds(90));
        var takenAfter = killed.Elapsed;
        output.WriteLine($"the task ran on the live worker {takenAfter.TotalSeconds:0.0} s after the kill");
        Assert.True(takenAfter < TimeSpan.FromSeconds(60), $"the task reached the live worker {takenAfter.TotalSeconds:0.0} s after the kill");

        // The live worker's cleanup removed the dead worker's container and scratch folder.
        await WaitForAsync(
            async () => (await docker.Containers.ListContainersAsync(byRun)).All(c => c.ID != deadContainer.ID) && !Directory.Exists(deadScratch) ? "clean" : null,
            TimeSpan.FromSeconds(30));

        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await run.WaitForExitAsync(limit.Token);
        var stdout = await run.StandardOutput.ReadToEndAsync();
        Assert.True(run.ExitCode == 0, stdout + await run.StandardError.ReadToEndAsync());

        var ended = Assert.Single(await store.GetTasksAsync(task.RunId, CancellationToken.None));
        Assert.Equal(TaskState.Succeeded, ended.State);
        Assert.EndsWith(secondName, ended.Worker, StringComparison.Ordinal);
        Assert.Equal(0, (await store.GetRunAsync(task.RunId, CancellationToken.None))!.Remaining);
        var provenance = await store.GetProvenanceAsync(task.RunId, CancellationToken.None);
        var row = Assert.Single(provenance);
        Assert.Equal(1, row.Attempt);
        Assert.Equal("succeeded", row.Status);
        var folder = new RunFolder(new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1")).Open(results).Child(task.RunId));
        var sizes = await folder.ResultAsync("sizes");
        Assert.Equal(new FileInfo(Path.Combine(input, "a.fastq")).Length, Assert.Single(sizes)["bytes"]);

        // The usage ledger: the killed delivery is recorded vacated (worker lost, CPU not measured),
        // the live one succeeded with its row's figures; one record each, however the jobs were redelivered.
        var usage = await new PostgresUsageStore(db, _schema).ForRunAsync(task.RunId, CancellationToken.None);
        Assert.Equal(
            [(1, UsageOutcomes.Vacated, task.Worker), (2, UsageOutcomes.Succeeded, ended.Worker)],
            usage.Select(u => (u.Delivery!.Value, u.Outcome, u.Worker)));
        Assert.Equal((UsageOutcomes.WorkerLost, (double?)null, task.StartedAt!.Value), (usage[0].Reason, usage[0].CpuSeconds, usage[0].StartedAt));
        Assert.Equal((row.CpuSeconds, UsageRecord.Seconds(row.WallSeconds!.Value), row.PeakMemoryBytes), (usage[1].CpuSeconds, usage[1].WallSeconds, usage[1].PeakMemoryBytes));
        Assert.NotNull(usage[1].CpuSeconds);

        // No container of the run is left: the dead worker's was removed by the cleanup, the live one's by itself.
        await WaitForAsync(async () => (await docker.Containers.ListContainersAsync(byRun)).Count == 0 ? "none" : null, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_worker_killed_in_the_middle_of_a_job_of_several_tasks_leaves_each_task_to_end_once_and_be_counted_once()
    {
        // Eight one-file tasks for one worker slot: the dispatcher releases them as two jobs of
        // four (JobSizes: 8 waiting over 1 slot x 2); the job's time is long enough to walk all four.
        var (workflow, _, results) = SlowWorkflow("crash8", [.. Enumerable.Range(0, 8).Select(i => $"f{i}.fastq")], seconds: 2);
        _env["PIPELINES_Worker__JobTime"] = "00:05:00";

        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await new PostgresSchema(db, _schema).CreateAsync(CancellationToken.None);
        var store = new PostgresRunStore(db, _schema);
        var first = Start(["worker", "--concurrency", "1"]);
        var run = Start(["run", workflow, "--local-workers", "0"]);

        // With one slot a job's tasks run one after another: a task running after another ended is
        // the second (or a later) task of the job the worker holds.
        var runId = await WaitForAsync(async () =>
        {
            var runs = (await store.QueryRunsAsync(new RunQuery(Limit: 1), CancellationToken.None)).Items;
            return runs.Count == 0 ? null : runs[0].RunId;
        });
        var running = await WaitForAsync(async () =>
        {
            var tasks = await store.GetTasksAsync(runId, CancellationToken.None);
            return tasks.Any(t => t.State == TaskState.Succeeded) ? tasks.FirstOrDefault(t => t.State == TaskState.Running) : null;
        });
        var endedBefore = (await store.GetTasksAsync(runId, CancellationToken.None)).Where(t => t.State == TaskState.Succeeded).Select(t => t.Index).ToList();
        first.Kill(entireProcessTree: true);
        await first.WaitForExitAsync();
        output.WriteLine($"killed the worker while task {running.Index} ran, after tasks {string.Join(", ", endedBefore)} ended");
        var second = Start(["worker", "--concurrency", "1"]);

        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await run.WaitForExitAsync(limit.Token);
        var stdout = await run.StandardOutput.ReadToEndAsync();
        Assert.True(run.ExitCode == 0, stdout + await run.StandardError.ReadToEndAsync());

        // Every task ended once: succeeded, one row each from its one counted attempt, the run's count at 0.
        var ended = await store.GetTasksAsync(runId, CancellationToken.None);
        Assert.Equal(8, ended.Count);
        Assert.All(ended, t => Assert.Equal(TaskState.Succeeded, t.State));
        Assert.Equal(0, (await store.GetRunAsync(runId, CancellationToken.None))!.Remaining);
        var rows = await store.GetProvenanceAsync(runId, CancellationToken.None);
        Assert.Equal([0, 1, 2, 3, 4, 5, 6, 7], rows.Select(r => r.TaskIndex));
        Assert.All(rows, r => Assert.Equal(("succeeded", 1), (r.Status, r.Attempt)));
        Assert.All(endedBefore, i => Assert.DoesNotContain(":" + second.Id.ToString(CultureInfo.InvariantCulture), ended[i].Worker, StringComparison.Ordinal));
        var folder = new RunFolder(new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1")).Open(results).Child(runId));
        Assert.Equal(8, (await folder.ResultAsync("sizes")).Count);

        // The ledger: the killed task's lost delivery vacated beside its counted one; every other task one record.
        var usage = await new PostgresUsageStore(db, _schema).ForRunAsync(runId, CancellationToken.None);
        Assert.Equal(
            [(UsageOutcomes.Vacated, 1), (UsageOutcomes.Succeeded, 2)],
            usage.Where(u => u.TaskIndex == running.Index).Select(u => (u.Outcome, u.Delivery!.Value)));
        Assert.All(usage.Where(u => u.TaskIndex != running.Index).GroupBy(u => u.TaskIndex), g => Assert.Equal(UsageOutcomes.Succeeded, Assert.Single(g).Outcome));
        Assert.Equal(7, usage.Count(u => u.TaskIndex != running.Index));

        // The tasks were carried by jobs of several (not one job each).
        await using var jobs = db.CreateCommand($"SELECT count(*) FROM {_schema}_hangfire.job WHERE invocationdata::text LIKE '%RunTasksAsync%'");
        Assert.True((long)(await jobs.ExecuteScalarAsync())! >= 1, "no job of several tasks was queued");
    }

    /// <summary>
    /// A workflow of one task per file (copies of one sample FASTQ), each sleeping, then counting
    /// its bytes; <paramref name="prelude"/> is shell run first (in the YAML's double quotes).
    /// </summary>
    private (string Workflow, string Input, string Results) SlowWorkflow(string name, string[] files, int seconds, string prelude = "")
    {
        var input = _temp.Combine("in-" + name);
        Directory.CreateDirectory(input);
        foreach (var file in files)
        {
            File.Copy(Path.Combine(TestEnvironment.SampleFastq, "lane1", "S001_R1.fastq"), Path.Combine(input, file));
        }

        var results = _temp.Combine("out-" + name);
        var workflow = _temp.Write(name + ".yaml", $$"""
            version: 1
            name: {{name}}
            input:
              uri: {{input}}
            steps:
              - name: slow
                image: pipelines-samples/pair-check:1
                command: ["sh", "-c", "{{prelude}}busybox sleep {{seconds}}; busybox wc -c < {input} > /out/size.txt"]
                outputs: ["size.txt"]
            gather:
              - name: sizes
                from: slow/size.txt
                header: false
                columns: [bytes]
            output:
              uri: {{results}}
            """);
        return (workflow, input, results);
    }

    private Process Start(IEnumerable<string> args)
    {
        var p = CliRunner.Start(args, _env);
        _processes.Add(p);
        return p;
    }

    private static async Task<T> WaitForAsync<T>(Func<Task<T?>> probe, TimeSpan? limit = null)
        where T : class
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < (limit ?? TimeSpan.FromSeconds(60)))
        {
            if (await probe() is { } found)
            {
                return found;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"not reached within {(limit ?? TimeSpan.FromSeconds(60)).TotalSeconds:0} s");
    }
}
