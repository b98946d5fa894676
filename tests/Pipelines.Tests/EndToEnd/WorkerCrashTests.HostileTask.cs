using Npgsql;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Tests.Support;
using TaskState = Pipelines.RunStore.TaskState;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// A hostile task in the middle of a job of several (docs/decisions.md, "Several tasks per
/// Hangfire job"), on the same PostgreSQL run store and real workers: the task ends once, saying
/// why, and the tasks after it in its job run as they would in jobs of their own.
/// </summary>
public sealed partial class WorkerCrashTests
{
    [Fact]
    public async Task A_task_that_prints_a_NUL_and_fails_in_a_job_of_several_ends_failed_saying_so_and_its_job_mates_run()
    {
        // Eight one-file tasks for one slot: two jobs of four (JobSizes). The third prints a NUL
        // before it fails: its reason quotes what it printed, which PostgreSQL's text cannot hold as is.
        var (workflow, _, _) = SlowWorkflow(
            "nul8",
            [.. Enumerable.Range(0, 8).Select(i => $"f{i}.fastq")],
            seconds: 0,
            prelude: """case {input} in *f2.fastq) printf 'before\\000after\\n'; exit 3;; esac; """);
        _env["PIPELINES_Worker__JobTime"] = "00:05:00";

        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await new PostgresSchema(db, _schema).CreateAsync(CancellationToken.None);
        var store = new PostgresRunStore(db, _schema);
        Start(["worker", "--concurrency", "1"]);
        var run = Start(["run", workflow, "--local-workers", "0"]);

        var runId = await WaitForAsync(async () => (await store.QueryRunsAsync(new RunQuery(Limit: 2), CancellationToken.None)).Items.SingleOrDefault()?.RunId);
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await run.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            // Before the fix: the hostile task's end could not be written, its job was retried, the rest of it waited.
            var states = (await store.GetTasksAsync(runId, CancellationToken.None)).Select(t => $"task {t.Index}: {t.State} {t.Error}");
            Assert.Fail("the run did not end within 2 minutes:\n" + string.Join("\n", states));
        }

        var stdout = await run.StandardOutput.ReadToEndAsync();

        // Every task ended once, with one row: the hostile one failed with its own reason, NUL shown; the others succeeded.
        var ended = await store.GetTasksAsync(runId, CancellationToken.None);
        Assert.Equal(8, ended.Count);
        var hostile = Assert.Single(ended, t => t.Inputs.Any(i => i.Key == "f2.fastq"));
        Assert.True(hostile.State == TaskState.Failed, $"{hostile.State}: {hostile.Error}\n{stdout}");
        Assert.Contains("exited with code 3: before\\0after", hostile.Error, StringComparison.Ordinal);
        Assert.All(ended.Where(t => t != hostile), t => Assert.True(t.State == TaskState.Succeeded, $"task {t.Index}: {t.State}: {t.Error}"));
        Assert.Equal(0, (await store.GetRunAsync(runId, CancellationToken.None))!.Remaining);
        var rows = await store.GetProvenanceAsync(runId, CancellationToken.None);
        Assert.Equal([0, 1, 2, 3, 4, 5, 6, 7], rows.Select(r => r.TaskIndex));
        Assert.Equal(hostile.Error, rows.Single(r => r.TaskIndex == hostile.Index).Error);
        Assert.Equal(1, run.ExitCode);

        await using var jobs = db.CreateCommand($"SELECT count(*) FROM {_schema}_hangfire.job WHERE invocationdata::text LIKE '%RunTasksAsync%'");
        Assert.True((long)(await jobs.ExecuteScalarAsync())! >= 1, "no job of several tasks was queued");
    }
}
