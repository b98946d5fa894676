using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Model;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Worker.Parts;

/// <summary>
/// The rules of the worker, each proven on its parts alone: the task shell with the cache,
/// staging, the step loop and the batch split, an object store in memory and a scripted
/// container runtime, without a process, a store server or a Docker engine. The same rules run
/// end to end against real services in the EndToEnd, Security and Faults suites.
/// </summary>
[Unit]
public sealed class TaskShellTests
{
    // A container per task (reuse: false): the scripted runtime plays each step's container;
    // the warm path's rules are proven against real containers (Security, Warm, EndToEnd).
    private const string OneStep = """
          - name: count
            image: scripted:1
            command: ["count", "{inputs}"]
            outputs: ["*.tsv"]
            retries: 1
            reuse: false
        """;

    /// <summary>A step that writes r.tsv ("made") and exits 0.</summary>
    private static readonly ScriptedRuntime.Script WritesMade = async (_, outDir, ct) =>
    {
        await File.WriteAllTextAsync(Path.Combine(outDir, "r.tsv"), "made\n", ct);
        return ScriptedRuntime.Exit(0);
    };

    private static readonly (string, string)[] ThreeFiles = [("a.txt", "alpha\n"), ("b.txt", "beta\n"), ("c.txt", "gamma\n")];

    [Fact]
    public async Task A_task_stages_its_inputs_in_runs_its_step_stages_the_kept_outputs_out_and_commits_once()
    {
        using var rig = new WorkerRig(async (spec, outDir, ct) =>
        {
            var inDir = ScriptedRuntime.Host(spec, ContainerLayout.In);
            var lines = spec.Command.Skip(1).Select(p => $"{p}\t{File.ReadAllText(Path.Combine(inDir, p[(ContainerLayout.In.Length + 1)..])).Length}");
            await File.WriteAllLinesAsync(Path.Combine(outDir, "counts.tsv"), lines, ct);
            await File.WriteAllTextAsync(Path.Combine(outDir, "scratch.bin"), "not kept", ct);
            return ScriptedRuntime.Exit(0, "counted\n");
        });
        var run = await rig.SubmitAsync(OneStep, ThreeFiles, batch: 3);

        await rig.DeliverAsync(run.RunId, 0);

        var task = await rig.TaskAsync(run.RunId, 0);
        Assert.Equal(TaskState.Succeeded, task.State);
        var row = Assert.Single(await rig.RowsAsync(run.RunId));
        Assert.Equal(("succeeded", 1, "count"), (row.Status, row.Attempt, row.Step));
        Assert.Equal(["a.txt", "b.txt", "c.txt"], row.Inputs.Select(i => i.Key));
        Assert.All(row.Inputs, i => Assert.Equal(64, i.Sha256.Length));
        var output = Assert.Single(row.Outputs);
        Assert.Equal($"tasks/{task.TaskId}/count/counts.tsv", output.Key);
        Assert.Equal("/in/a.txt\t6\n/in/b.txt\t5\n/in/c.txt\t6\n", rig.Text($"out/{run.RunId}/{output.Key}"));
        Assert.DoesNotContain(rig.Objects.Keys, k => k.EndsWith("scratch.bin", StringComparison.Ordinal));
        Assert.Contains("counted", rig.Text($"out/{run.RunId}/tasks/{task.TaskId}/count.log"), StringComparison.Ordinal);

        // The shell's consequences: a cache entry for later runs, the fan-in to the gather, and the
        // scratch folder emptied for the next task (its owner marker and an empty in/ left, no out-*).
        Assert.True(rig.Objects.Contains($"out/.cache/{task.TaskId}.json"));
        Assert.Equal([run.RunId], rig.Queue.Gathers);
        var scratch = Assert.Single(Directory.EnumerateDirectories(rig.Scratch));
        Assert.Equal([".owner", "in"], Directory.EnumerateFileSystemEntries(scratch).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(scratch, "in")));

        // A second delivery of the committed task changes nothing and runs nothing.
        await rig.DeliverAsync(run.RunId, 0);
        Assert.Equal(1, rig.Runtime.Runs);
        Assert.Single(await rig.RowsAsync(run.RunId));
    }

    [Fact]
    public async Task A_failed_attempt_is_retried_in_a_new_empty_out_and_both_attempts_are_recorded()
    {
        var attempts = 0;
        using var rig = new WorkerRig(async (spec, outDir, ct) =>
        {
            var empty = !Directory.EnumerateFileSystemEntries(outDir).Any();
            await File.WriteAllTextAsync(Path.Combine(outDir, "r.tsv"), $"attempt {++attempts} empty {empty}\n", ct);
            return ScriptedRuntime.Exit(attempts == 1 ? 3 : 0, attempts == 1 ? "boom\n" : "");
        });
        var run = await rig.SubmitAsync(OneStep, [("a.txt", "x")]);

        await rig.DeliverAsync(run.RunId, 0);

        var rows = await rig.RowsAsync(run.RunId);
        Assert.Equal([("failed", 1, 3L), ("succeeded", 2, 0L)], rows.Select(r => (r.Status, r.Attempt, r.ExitCode ?? -1)));
        Assert.Equal("step 'count' exited with code 3: boom", rows[0].Error);
        Assert.Equal("attempt 2 empty True\n", rig.Text($"out/{run.RunId}/{rows[1].Outputs[0].Key}"));
        var log = rig.Text($"out/{run.RunId}/{rows[1].Log}");
        Assert.Contains("count attempt 1, exited with code 3", log, StringComparison.Ordinal);
        Assert.Contains("count attempt 2, exit 0", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failed_batch_under_on_error_continue_splits_and_each_input_then_ends_on_its_own()
    {
        using var rig = new WorkerRig(async (spec, outDir, ct) =>
        {
            var inputs = spec.Command.Skip(1).ToList();
            if (inputs.Contains("/in/b.txt"))
            {
                return ScriptedRuntime.Exit(1, "b is bad\n");
            }

            await File.WriteAllTextAsync(Path.Combine(outDir, "r.tsv"), string.Join(',', inputs), ct);
            return ScriptedRuntime.Exit(0);
        });
        var run = await rig.SubmitAsync(OneStep, ThreeFiles, batch: 3);

        await rig.DeliverAllAsync(run.RunId);

        var tasks = await rig.Runs.GetTasksAsync(run.RunId, CancellationToken.None);
        Assert.Equal(TaskState.Split, tasks[0].State);
        Assert.Contains("the batch of 3 inputs was split", tasks[0].Error, StringComparison.Ordinal);
        var children = tasks.Where(t => t.ParentIndex == 0).ToList();
        Assert.Equal([("a.txt", TaskState.Succeeded), ("b.txt", TaskState.Failed), ("c.txt", TaskState.Succeeded)], children.Select(c => (c.Inputs.Single().Key, c.State)));
        Assert.Equal(RunState.Running, (await rig.Runs.GetRunAsync(run.RunId, CancellationToken.None))!.State);
        Assert.Equal([run.RunId], rig.Queue.Gathers);

        // 2 attempts of the batch, then 1 each for a and c and 2 for b (retries: 1).
        Assert.Equal(6, rig.Runtime.Runs);
    }

    [Fact]
    public async Task A_batch_that_timed_out_is_not_split_since_each_input_would_pay_the_timeout_again()
    {
        using var rig = new WorkerRig((_, _, _) => Task.FromResult(new ContainerResult(137, TimedOut: true, OomKilled: false, "", TimeSpan.FromSeconds(1))));
        var run = await rig.SubmitAsync(OneStep, ThreeFiles, batch: 3);

        await rig.DeliverAllAsync(run.RunId);

        var task = Assert.Single(await rig.Runs.GetTasksAsync(run.RunId, CancellationToken.None));
        Assert.Equal(TaskState.Failed, task.State);
        Assert.Equal("step 'count' timed out and was killed", task.Error);
    }

    [Fact]
    public async Task A_later_run_reuses_a_succeeded_task_from_the_cache_without_running_it()
    {
        using var rig = new WorkerRig(WritesMade);
        var first = await rig.SubmitAsync(OneStep, [("a.txt", "x")], runId: "run-1");
        await rig.DeliverAsync(first.RunId, 0);
        var second = await rig.SubmitAsync(OneStep, [("a.txt", "x")], runId: "run-2");

        await rig.DeliverAsync(second.RunId, 0);

        Assert.Equal(TaskState.Cached, (await rig.TaskAsync(second.RunId, 0)).State);
        Assert.Equal(1, rig.Runtime.Runs);
        var row = Assert.Single(await rig.RowsAsync(second.RunId));
        Assert.Equal(("cached", "run-1"), (row.Status, row.CachedFrom));
        Assert.Equal("made\n", rig.Text($"out/run-2/{row.Outputs[0].Key}"));
    }

    [Fact]
    public async Task A_cache_entry_that_meets_an_outage_is_written_once_the_store_is_back_and_the_task_stays_succeeded()
    {
        using var rig = new WorkerRig(
            WritesMade,
            new Dictionary<string, string?> { ["Worker:OutageWait"] = "00:01:00" });
        var refusedPuts = 0;
        rig.Objects.BeforePut = (key, _) => key.StartsWith("out/.cache/", StringComparison.Ordinal) && Interlocked.Increment(ref refusedPuts) == 1
            ? throw new PipelinesException("S3 is out of reach", retryHelps: true)
            : Task.CompletedTask;
        var run = await rig.SubmitAsync(OneStep, [("a.txt", "x")]);

        await rig.DeliverAsync(run.RunId, 0);

        var task = await rig.TaskAsync(run.RunId, 0);
        Assert.Equal(TaskState.Succeeded, task.State);
        Assert.True(rig.Objects.Contains($"out/.cache/{task.TaskId}.json"), "the cache entry was lost to the outage");
        Assert.True(refusedPuts >= 2, $"the cache write was not tried again after the outage ({refusedPuts} put(s))");
        Assert.Equal([run.RunId], rig.Queue.Gathers);
    }

    [Fact]
    public async Task A_cache_entry_that_cannot_be_written_is_said_and_neither_fails_the_task_nor_stops_the_fan_in()
    {
        var logs = new LogLines();
        using var rig = new WorkerRig(
            WritesMade,
            more: services => services.AddLogging(l => l.AddProvider(logs)));
        rig.Objects.BeforePut = (key, _) => key.StartsWith("out/.cache/", StringComparison.Ordinal)
            ? throw new PipelinesException("access denied to out/.cache/", retryHelps: false)
            : Task.CompletedTask;
        var run = await rig.SubmitAsync(OneStep, [("a.txt", "x")]);

        await rig.DeliverAsync(run.RunId, 0);

        var task = await rig.TaskAsync(run.RunId, 0);
        Assert.Equal(TaskState.Succeeded, task.State);
        Assert.Equal([run.RunId], rig.Queue.Gathers);
        Assert.Contains(logs.Lines, m => m.Contains($"task 0 ({task.TaskId}) succeeded, but its cache entry could not be written: access denied", StringComparison.Ordinal)
            && m.Contains("will run this task again", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_cached_output_whose_bytes_changed_is_not_reused_and_the_task_runs_again()
    {
        using var rig = new WorkerRig(WritesMade);
        var first = await rig.SubmitAsync(OneStep, [("a.txt", "x")], runId: "run-1");
        await rig.DeliverAsync(first.RunId, 0);
        var key = (await rig.RowsAsync(first.RunId))[0].Outputs[0].Key;
        rig.Objects.Set($"out/run-1/{key}", Encoding.UTF8.GetBytes("tampered\n"));
        var second = await rig.SubmitAsync(OneStep, [("a.txt", "x")], runId: "run-2");

        await rig.DeliverAsync(second.RunId, 0);

        Assert.Equal(TaskState.Succeeded, (await rig.TaskAsync(second.RunId, 0)).State);
        Assert.Equal(2, rig.Runtime.Runs);
        Assert.Equal("made\n", rig.Text($"out/run-2/{key}"));
    }

    [Fact]
    public async Task An_input_that_changed_after_planning_fails_the_task_with_a_reason_and_runs_nothing()
    {
        using var rig = new WorkerRig((_, _, _) => Task.FromResult(ScriptedRuntime.Exit(0)));
        var run = await rig.SubmitAsync(OneStep, [("a.txt", "before")]);
        rig.Objects.Set("in/a.txt", Encoding.UTF8.GetBytes("after!"));

        await rig.DeliverAsync(run.RunId, 0);

        var task = await rig.TaskAsync(run.RunId, 0);
        Assert.Equal(TaskState.Failed, task.State);
        Assert.StartsWith("input 'a.txt' changed after the run was planned", task.Error, StringComparison.Ordinal);
        Assert.Equal(0, rig.Runtime.Runs);
        Assert.Equal("failed", Assert.Single(await rig.RowsAsync(run.RunId)).Status);
    }

    [Fact]
    public async Task Something_unforeseen_ends_the_task_failed_with_its_type_and_message_and_on_error_fail_stops_the_run()
    {
        using var rig = new WorkerRig((_, _, _) => throw new InvalidOperationException("the runtime broke"));
        var run = await rig.SubmitAsync(OneStep, [("a.txt", "x"), ("b.txt", "y")], onError: "fail");

        await rig.DeliverAsync(run.RunId, 0);
        await rig.DeliverAsync(run.RunId, 1);

        var tasks = await rig.Runs.GetTasksAsync(run.RunId, CancellationToken.None);
        Assert.Equal((TaskState.Failed, "InvalidOperationException: the runtime broke"), (tasks[0].State, tasks[0].Error));
        Assert.Equal(TaskState.Cancelled, tasks[1].State);
        Assert.StartsWith("not started: task 0", tasks[1].Error, StringComparison.Ordinal);
        Assert.Equal(1, rig.Runtime.Runs);
        Assert.Equal([run.RunId], rig.Queue.Gathers);
    }

    [Fact]
    public async Task An_outage_is_not_a_failure_the_task_is_left_for_the_next_delivery()
    {
        var calls = 0;
        using var rig = new WorkerRig(async (_, outDir, ct) =>
        {
            if (++calls == 1)
            {
                throw new PipelinesException("cannot reach the Docker engine", retryHelps: true);
            }

            await File.WriteAllTextAsync(Path.Combine(outDir, "r.tsv"), "ok\n", ct);
            return ScriptedRuntime.Exit(0);
        });
        var run = await rig.SubmitAsync(OneStep, [("a.txt", "x")]);

        var outage = await Assert.ThrowsAsync<PipelinesException>(() => rig.DeliverAsync(run.RunId, 0));
        Assert.True(outage.RetryHelps);
        Assert.False((await rig.TaskAsync(run.RunId, 0)).State.IsTerminal());
        Assert.Empty(rig.Queue.Gathers);

        await rig.DeliverAsync(run.RunId, 0);
        Assert.Equal(TaskState.Succeeded, (await rig.TaskAsync(run.RunId, 0)).State);
    }

    [Fact]
    public async Task A_cancel_stops_the_running_step_and_the_task_ends_cancelled_without_a_retry()
    {
        var started = new TaskCompletionSource();
        using var rig = new WorkerRig(async (_, _, ct) =>
        {
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return ScriptedRuntime.Exit(0);
        });
        var run = await rig.SubmitAsync(OneStep, [("a.txt", "x")]);

        var delivery = rig.DeliverAsync(run.RunId, 0);
        await started.Task;
        await rig.Runs.RequestStopAsync(run.RunId, StopReasons.Cancel("by a test"), CancellationToken.None);
        await delivery;

        var task = await rig.TaskAsync(run.RunId, 0);
        Assert.Equal(TaskState.Cancelled, task.State);
        Assert.Contains("by a test", task.Error, StringComparison.Ordinal);
        Assert.Equal(1, rig.Runtime.Runs);
        Assert.Equal("cancelled", Assert.Single(await rig.RowsAsync(run.RunId)).Status);
    }

    [Fact]
    public async Task A_step_that_writes_past_its_files_quota_is_stopped_while_it_runs()
    {
        using var rig = new WorkerRig(async (_, outDir, ct) =>
        {
            for (var i = 0; !ct.IsCancellationRequested; i++)
            {
                await File.WriteAllTextAsync(Path.Combine(outDir, $"f{i}.tsv"), "x", CancellationToken.None);
                await Task.Yield();
            }

            ct.ThrowIfCancellationRequested();
            return ScriptedRuntime.Exit(0);
        });
        var run = await rig.SubmitAsync(OneStep.Replace("retries: 1", "retries: 0\n    resources: { files: 50 }", StringComparison.Ordinal), [("a.txt", "x")]);

        await rig.DeliverAsync(run.RunId, 0);

        var task = await rig.TaskAsync(run.RunId, 0);
        Assert.Equal(TaskState.Failed, task.State);
        Assert.Equal("step 'count' was stopped: it wrote more than 50 files and folders to /out, over its quota (resources.files of step 'count' is 50)", task.Error);
    }

    [Fact]
    public async Task A_link_left_in_out_fails_the_attempt_and_nothing_it_points_at_is_taken()
    {
        using var rig = new WorkerRig((_, outDir, _) =>
        {
            File.CreateSymbolicLink(Path.Combine(outDir, "r.tsv"), "/etc/passwd");
            return Task.FromResult(ScriptedRuntime.Exit(0));
        });
        var run = await rig.SubmitAsync(OneStep.Replace("retries: 1", "retries: 0", StringComparison.Ordinal), [("a.txt", "x")]);

        await rig.DeliverAsync(run.RunId, 0);

        var task = await rig.TaskAsync(run.RunId, 0);
        Assert.Equal(TaskState.Failed, task.State);
        Assert.StartsWith("step 'count' left outputs that cannot be taken:", task.Error, StringComparison.Ordinal);
        Assert.Contains("r.tsv", task.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(rig.Objects.Keys, k => k.EndsWith("r.tsv", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_task_whose_job_can_be_delivered_no_more_is_ended_by_the_same_shell_with_its_consequences()
    {
        using var rig = new WorkerRig((_, _, _) => Task.FromResult(ScriptedRuntime.Exit(0)));
        var run = await rig.SubmitAsync(OneStep, [("a.txt", "x")], onError: "fail");

        await rig.Runner.EndFailedAsync(run.RunId, 0, "gave up after 3 deliveries: S3 is out of reach", CancellationToken.None);

        var task = await rig.TaskAsync(run.RunId, 0);
        Assert.Equal((TaskState.Failed, "gave up after 3 deliveries: S3 is out of reach"), (task.State, task.Error));
        Assert.StartsWith("task 0", (await rig.Runs.GetRunAsync(run.RunId, CancellationToken.None))!.StopReason, StringComparison.Ordinal);
        Assert.Equal([run.RunId], rig.Queue.Gathers);
    }
}
