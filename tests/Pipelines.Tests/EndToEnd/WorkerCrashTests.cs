using System.Diagnostics;
using System.Globalization;
using Docker.DotNet;
using Docker.DotNet.Models;
using Npgsql;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.Support;
using TaskState = Pipelines.RunStore.TaskState;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// At-least-once delivery with a commit that happens once: a worker killed with SIGKILL in the
/// middle of a task leaves its Hangfire job invisible; after the invisibility timeout another
/// worker gets it, runs the task again and commits it, and the run counts it once.
/// </summary>
[Collection("end-to-end")]
public sealed class WorkerCrashTests : IAsyncLifetime
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
            ["PIPELINES_Hangfire__InvisibilityTimeout"] = "00:00:08",
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
    public async Task A_task_whose_worker_is_killed_is_delivered_again_and_counted_once()
    {
        var input = _temp.Combine("in");
        Directory.CreateDirectory(input);
        File.Copy(Path.Combine(TestEnvironment.SampleFastq, "lane1", "S001_R1.fastq"), Path.Combine(input, "a.fastq"));
        var workflow = _temp.Write("crash.yaml", $$"""
            version: 1
            name: crash
            input:
              uri: {{input}}
            steps:
              - name: slow
                image: pipelines-samples/pair-check:1
                command: ["sh", "-c", "busybox sleep 6; busybox wc -c < {input} > /out/size.txt"]
                outputs: ["size.txt"]
            gather:
              - name: sizes
                from: slow/size.txt
                header: false
                columns: [bytes]
            output:
              uri: {{_temp.Combine("out")}}
            """);

        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        var store = new PostgresRunStore(db, _schema);
        await store.InitializeAsync(CancellationToken.None);
        var first = Start(["worker", "--concurrency", "1"]);
        var run = Start(["run", workflow, "--local-workers", "0"]);
        var task = await WaitForAsync(async () =>
        {
            var runs = await store.ListRunsAsync(1, CancellationToken.None);
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
        await WaitForAsync(async () => (await docker.Containers.ListContainersAsync(byRun)).FirstOrDefault());

        // SIGKILL: no shutdown, no requeue; the job stays fetched until its invisibility times out.
        first.Kill(entireProcessTree: true);
        await first.WaitForExitAsync();
        var second = Start(["worker", "--concurrency", "1"]);

        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await run.WaitForExitAsync(limit.Token);
        var stdout = await run.StandardOutput.ReadToEndAsync();
        Assert.True(run.ExitCode == 0, stdout + await run.StandardError.ReadToEndAsync());

        var ended = (await store.GetTasksAsync(task.RunId, CancellationToken.None)).Single();
        Assert.Equal(TaskState.Succeeded, ended.State);
        Assert.EndsWith(":" + second.Id.ToString(CultureInfo.InvariantCulture), ended.Worker, StringComparison.Ordinal);
        var provenance = await store.GetProvenanceAsync(task.RunId, CancellationToken.None);
        var row = Assert.Single(provenance);
        Assert.Equal(1, row.Attempt);
        Assert.Equal("succeeded", row.Status);
        var folder = new RunFolder(new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1")).Open(_temp.Combine("out")).Child(task.RunId));
        var sizes = await folder.ResultAsync("sizes");
        Assert.Equal(new FileInfo(Path.Combine(input, "a.fastq")).Length, Assert.Single(sizes)["bytes"]);

        // The killed worker's container ran on (the second worker's was removed); remove it.
        var left = await docker.Containers.ListContainersAsync(byRun);
        Assert.Single(left);
        foreach (var c in left)
        {
            await docker.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true });
        }
    }

    private Process Start(IEnumerable<string> args)
    {
        var p = CliRunner.Start(args, _env);
        _processes.Add(p);
        return p;
    }

    private static async Task<T> WaitForAsync<T>(Func<Task<T?>> probe)
        where T : class
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (await probe() is { } found)
            {
                return found;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException("the task never started");
    }
}
