using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Queue;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Worker;

/// <summary>
/// One delivery of one task: stage the inputs in, run the steps in locked-down containers,
/// stage the kept outputs and logs out, and commit once. Hangfire delivers at least once, so
/// every part of this is safe to repeat: output keys are deterministic, and the commit is a
/// conditional update that a second delivery cannot repeat.
/// </summary>
public sealed partial class TaskRunner(
    IRunStore store,
    ITaskQueue queue,
    IContainerRuntime runtime,
    ObjectStoreFactory stores,
    WorkerOptions options,
    OutageGate gate,
    TimeProvider time,
    ILogger<TaskRunner> log)
{
    // Parsed run definitions, so that the tasks of a run do not parse its JSON again each; a
    // long-lived worker sees many runs, so the cache is dropped whole when it grows past a bound.
    private const int MaxCachedDefinitions = 256;
    private static readonly ConcurrentDictionary<string, RunDefinition> Definitions = new(StringComparer.Ordinal);

    /// <summary>
    /// One delivery of a task job. An outage met on the way is waited out here, in-process and
    /// with backoff (<see cref="OutageGate"/>): every step below is safe to do again.
    /// </summary>
    public Task RunAsync(string runId, int index, CancellationToken cancellationToken) =>
        gate.RunAsync(
            async () =>
            {
                await DeliverAsync(runId, index, cancellationToken).ConfigureAwait(false);
                return true;
            },
            OutageGate.IsOutage,
            $"run {runId} task {index}",
            cancellationToken);

    private async Task DeliverAsync(string runId, int index, CancellationToken cancellationToken)
    {
        var run = await store.GetRunAsync(runId, cancellationToken).ConfigureAwait(false)
            ?? throw new PipelinesException($"run {runId} does not exist in the run store", retryHelps: false);
        if (run.State.IsTerminal())
        {
            return;
        }

        var task = await store.GetTaskAsync(runId, index, cancellationToken).ConfigureAwait(false)
            ?? throw new PipelinesException($"run {runId} has no task {index}", retryHelps: false);
        var remaining = run.Remaining;
        if (task.State == TaskState.Split)
        {
            // A delivery after the split committed (the worker died before enqueuing the
            // children): enqueue the children still queued; a second job for one is harmless.
            var queued = (await store.GetTasksAsync(runId, cancellationToken).ConfigureAwait(false))
                .Where(t => t.ParentIndex == index && t.State == TaskState.Queued).Select(t => t.Index).ToList();
            if (queued.Count > 0)
            {
                await queue.EnqueueTasksAsync(runId, queued, cancellationToken).ConfigureAwait(false);
            }
        }
        else if (!task.State.IsTerminal())
        {
            if (Definitions.Count >= MaxCachedDefinitions)
            {
                Definitions.Clear();
            }

            try
            {
                var definition = Definitions.GetOrAdd(runId, _ => RunDefinition.FromJson(run.DefinitionJson));
                remaining = await RunTaskAsync(run, task, definition, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && !OutageGate.IsOutage(e))
            {
                // The one place a task's outcome is settled when something unforeseen threw
                // (a bug, a corrupt definition, a file the engine cannot handle): the task ends
                // failed with the reason now, rather than after an outage's worth of retries.
                // Outages go on to Hangfire, and EndWhenJobFails ends the task if they outlast it.
                var reason = PipelinesException.Describe(e);
                LogTaskError(log, runId, index, reason);
                (_, remaining) = await store.CommitTaskAsync(runId, index, new TaskOutcome(TaskState.Failed, null, reason, time.GetUtcNow()), [], cancellationToken).ConfigureAwait(false);
            }
        }

        // The fan-in: whoever sees no task left starts the gather. A crash between the commit and
        // this line is healed by the job's next delivery, which reaches here with the task ended.
        if (remaining == 0)
        {
            await queue.EnqueueGatherAsync(runId, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<int> RunTaskAsync(RunRecord run, TaskRecord task, RunDefinition definition, CancellationToken ct)
    {
        var workflow = definition.Workflow;
        var runOutput = stores.Open(workflow.Output.Uri).Child(run.RunId);
        if (run.StopReason is null)
        {
            var reused = await TryReuseAsync(run, task, definition, runOutput, ct).ConfigureAwait(false);
            if (reused is not null)
            {
                return reused.Value;
            }

            // The lease keeps a second delivery from running the task while this attempt runs.
            var lease = await TaskLease.ClaimAsync(store, run.RunId, task.Index, options, time, log, ct).ConfigureAwait(false);
            if (lease is not null)
            {
                await using (lease.ConfigureAwait(false))
                {
                    return await ExecuteAsync(run, task, definition, runOutput, ct).ConfigureAwait(false);
                }
            }
        }

        // The run is stopping (on_error: fail, or a cancel): a task that has not started never will.
        var reason = (await store.GetRunAsync(run.RunId, ct).ConfigureAwait(false))?.StopReason ?? run.StopReason ?? "run stopped";
        var (_, remaining) = await store.CommitTaskAsync(run.RunId, task.Index, new TaskOutcome(TaskState.Cancelled, null, "not started: " + reason, time.GetUtcNow()), [], ct).ConfigureAwait(false);
        return remaining;
    }

    private async Task<int> ExecuteAsync(RunRecord run, TaskRecord task, RunDefinition definition, StorageLocation runOutput, CancellationToken ct)
    {
        var workflow = definition.Workflow;
        var steps = Planner.Expand(workflow, definition.ImageDigests, task.Inputs, task.Captures, task.TaskId);
        var scratch = Path.Combine(options.Scratch, $"{run.RunId}-{task.Index}-{Guid.NewGuid():N}"[..^20]);
        PrepareScratchRoot();
        var rows = new List<ProvenanceRow>();
        TaskOutcome outcome;
        var splittable = true;
        try
        {
            // Only the engine may enter a task's scratch folder: containers see their binds, not the path to them.
            Directory.CreateDirectory(scratch, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            ProcessOwner.Mark(scratch);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var inputs = await StageInAsync(workflow, task, Path.Combine(scratch, "in"), ct).ConfigureAwait(false);
            var stagedIn = clock.Elapsed;
            (outcome, splittable) = await RunStepsAsync(run, task, steps, inputs, scratch, runOutput, rows, ct).ConfigureAwait(false);
            LogTaskTimes(log, run.RunId, task.Index, inputs.Count, stagedIn.TotalMilliseconds, (clock.Elapsed - stagedIn).TotalMilliseconds);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && !OutageGate.IsOutage(e))
        {
            // Anything else that went wrong in staging or stage-out (an input deleted or changed
            // since planning, a file the engine cannot read or write, a bug): the task ends failed
            // with the reason, and the run goes on. Outages are thrown on to Hangfire, which
            // delivers the job again after a delay; EndTaskWhenJobFails ends it once retries run out.
            var reason = PipelinesException.Describe(e);
            LogTaskError(log, run.RunId, task.Index, reason);
            rows.Add(Row(run, task, steps[Math.Min(rows.Count, steps.Count - 1)], attempt: rows.Count + 1, "failed", null, [], [], time.GetUtcNow(), null, reason));
            outcome = new TaskOutcome(TaskState.Failed, null, reason, time.GetUtcNow());
        }
        finally
        {
            DeleteScratch(scratch);
        }

        if (outcome.State == TaskState.Failed && splittable && CanSplit(run, task, workflow))
        {
            return await SplitAsync(run, task, definition, outcome, rows, ct).ConfigureAwait(false);
        }

        var (committed, remaining) = await store.CommitTaskAsync(run.RunId, task.Index, outcome, rows, ct).ConfigureAwait(false);
        if (committed && outcome.State == TaskState.Succeeded)
        {
            await WriteCacheEntryAsync(run, task, workflow, rows, ct).ConfigureAwait(false);
        }

        if (committed && outcome.State == TaskState.Failed && workflow.OnError == OnError.Fail)
        {
            await store.RequestStopAsync(run.RunId, $"task {task.Index} ({task.TaskId}) failed and on_error is fail", ct).ConfigureAwait(false);
        }

        return remaining;
    }

    /// <summary>
    /// A failed batch of plain files (no group_by, no sample sheet) under on_error: continue is
    /// split, so that one bad input does not cost the results of the others. Only a failure that
    /// one input can cause splits: an exit code or a stage-in error, not a timeout, an OOM kill or
    /// a quota (each input run alone would pay it again: one broken image in a batch of 1,000
    /// would cost 1,001 timeouts).
    /// </summary>
    private static bool CanSplit(RunRecord run, TaskRecord task, Workflow workflow) =>
        workflow.OnError == OnError.Continue && task.Inputs.Count > 1 && Planner.CanStream(workflow) && run.StopReason is null;

    /// <summary>
    /// Ends the batch as split and queues each of its inputs as a task of its own, with the task
    /// id a plan of batch 1 would give it: per-file outcomes, provenance and retries, and later
    /// runs can reuse their results.
    /// </summary>
    private async Task<int> SplitAsync(RunRecord run, TaskRecord task, RunDefinition definition, TaskOutcome outcome, List<ProvenanceRow> rows, CancellationToken ct)
    {
        var none = new Dictionary<string, string>();
        var children = task.Inputs
            .Select(i => new TaskRecord(run.RunId, -1, Planner.TaskId(definition.Workflow, definition.ImageDigests, [i], none), TaskState.Queued, [i], none, 0, null, null, null, null, null))
            .ToList();
        var note = $"{outcome.Error} [the batch of {task.Inputs.Count} inputs was split: each input runs again as a task of its own]";
        var (split, indexes, remaining) = await store.SplitTaskAsync(run.RunId, task.Index, outcome with { Error = note }, rows, children, ct).ConfigureAwait(false);
        if (split)
        {
            LogSplit(log, run.RunId, task.Index, indexes.Count, indexes[0], indexes[^1]);

            // At-least-once: a crash before this line is healed by the parent's next delivery,
            // which finds it split and enqueues the children still queued.
            await queue.EnqueueTasksAsync(run.RunId, indexes, ct).ConfigureAwait(false);
        }

        return remaining;
    }

    private async Task<List<FileRef>> StageInAsync(Workflow workflow, TaskRecord task, string inDir, CancellationToken ct)
    {
        var input = stores.Open(workflow.Input.Uri);
        var refs = new FileRef[task.Inputs.Count];
        await Parallel.ForEachAsync(
            Enumerable.Range(0, task.Inputs.Count),
            new ParallelOptions { MaxDegreeOfParallelism = options.TransferConcurrency, CancellationToken = ct },
            async (i, token) =>
            {
                var file = task.Inputs[i];
                var digest = await input.Store.DownloadAsync(input.Key(file.Key), Path.Combine(inDir, file.Key), token).ConfigureAwait(false);
                if (!ContentTags.Matches(file.Hash, file.Size, digest))
                {
                    throw new PipelinesException($"input '{file.Key}' changed after the run was planned (stored content no longer matches its tag {file.Hash}); submit the run again", retryHelps: false);
                }

                refs[i] = new FileRef { Key = file.Key, Size = digest.Size, Sha256 = digest.Sha256 };
            }).ConfigureAwait(false);
        return refs.ToList();
    }

    private async Task<(TaskOutcome Outcome, bool Splittable)> RunStepsAsync(RunRecord run, TaskRecord task, IReadOnlyList<ExpandedStep> steps, List<FileRef> inputs, string scratch, StorageLocation runOutput, List<ProvenanceRow> rows, CancellationToken ct)
    {
        var kept = new List<(string Name, string Dir)>();
        long? lastExit = null;
        var splittable = false;
        foreach (var step in steps)
        {
            var stepLog = new StringBuilder();
            var succeeded = false;
            string? error = null;
            for (var attempt = 1; attempt <= step.Retries + 1; attempt++)
            {
                var outDir = Path.Combine(scratch, $"out-{step.Name}-{attempt}");
                Directory.CreateDirectory(outDir);

                // The algorithm runs as a non-root user: /out must be writable by it.
                File.SetUnixFileMode(outDir, (UnixFileMode)0b111_111_111);
                var mounts = new List<Mount> { new(Path.Combine(scratch, "in"), ContainerLayout.In, ReadOnly: true) };
                mounts.AddRange(kept.Select(k => new Mount(k.Dir, ContainerLayout.StepFolder(k.Name), ReadOnly: true)));
                mounts.Add(new Mount(outDir, ContainerLayout.Out, ReadOnly: false));
                Directory.CreateDirectory(Path.Combine(scratch, "in"));
                var started = time.GetUtcNow();
                var limits = Limits(step);
                ContainerResult? result = null;
                string? cancelledBecause = null;
                string? stoppedBecause = null;
                try
                {
                    (result, cancelledBecause, stoppedBecause) = await RunWatchedAsync(
                        run.RunId,
                        new ContainerSpec(step.ImageDigest, step.Command, step.Env, mounts, step.Resources, new Dictionary<string, string>
                        {
                            ["org.pipelines.run"] = run.RunId,
                            ["org.pipelines.task"] = task.TaskId,
                            ["org.pipelines.step"] = step.Name,
                        })
                        { Secrets = options.SecretsFor(step.Name, step.Secrets) },
                        outDir,
                        limits,
                        ct).ConfigureAwait(false);
                    error = stoppedBecause is not null ? $"step '{step.Name}' was stopped: {stoppedBecause}"
                        : result is null ? $"step '{step.Name}' was stopped: {cancelledBecause}"
                        : result.Succeeded ? null
                        : $"step '{step.Name}' {result.Error}" + Tail(result.Log);
                }
                catch (PipelinesException e) when (!ct.IsCancellationRequested && !e.RetryHelps)
                {
                    error = $"step '{step.Name}' could not run: {e.Message}";
                }

                if (cancelledBecause is not null)
                {
                    // A user's cancel stopped the container: the task ends cancelled, and is not retried.
                    stepLog.Append("=== pipelines: ").Append(step.Name).Append(" attempt ").Append(attempt).Append(", stopped: ").Append(cancelledBecause).Append(" ===\n");
                    rows.Add(Row(run, task, step, attempt, "cancelled", null, inputs, [], started, RunLayout.TaskLog(task.TaskId, step.Name), error));
                    await runOutput.Store.PutAsync(runOutput.Key(RunLayout.TaskLog(task.TaskId, step.Name)), Encoding.UTF8.GetBytes(stepLog.ToString()), "text/plain; charset=utf-8", ct).ConfigureAwait(false);
                    return (new TaskOutcome(TaskState.Cancelled, null, error, time.GetUtcNow()), false);
                }

                stepLog.Append("=== pipelines: ").Append(step.Name).Append(" attempt ").Append(attempt)
                    .Append(", ").Append(result is null ? "not started" : result.Error ?? "exit 0")
                    .Append(result is null ? "" : $", {result.Duration.TotalSeconds:0.000}s").Append(" ===\n");
                var text = result?.Log ?? error ?? "";
                stepLog.Append(text).Append(text.Length > 0 && !text.EndsWith('\n') ? "\n" : "");
                lastExit = result?.ExitCode;
                splittable = result is { TimedOut: false, OomKilled: false } && stoppedBecause is null;

                List<FileRef> outputs = [];
                if (error is null)
                {
                    try
                    {
                        outputs = await StageOutAsync(task, step, outDir, limits, runOutput, stepLog, ct).ConfigureAwait(false);
                        kept.Add((step.Name, outDir));
                        succeeded = true;
                    }
                    catch (OutputRefusedException e)
                    {
                        // What the step left cannot be taken (a link, a fifo, a bad name, a quota):
                        // the attempt fails, like an exit code, and may be retried.
                        error = $"step '{step.Name}' left outputs that cannot be taken: {e.Message}";
                        stepLog.Append("=== pipelines: ").Append(error).Append(" ===\n");
                    }
                }

                rows.Add(Row(run, task, step, attempt, succeeded ? "succeeded" : "failed", result?.ExitCode, inputs, outputs, started, RunLayout.TaskLog(task.TaskId, step.Name), error));
                if (succeeded)
                {
                    break;
                }

                LogStepFailed(log, run.RunId, task.Index, step.Name, attempt, error!);
            }

            await runOutput.Store.PutAsync(runOutput.Key(RunLayout.TaskLog(task.TaskId, step.Name)), Encoding.UTF8.GetBytes(stepLog.ToString()), "text/plain; charset=utf-8", ct).ConfigureAwait(false);
            if (!succeeded)
            {
                return (new TaskOutcome(TaskState.Failed, lastExit, error, time.GetUtcNow()), splittable);
            }
        }

        return (new TaskOutcome(TaskState.Succeeded, lastExit, null, time.GetUtcNow()), false);
    }

    /// <summary>
    /// Runs one container while watching the run and the step's /out: when a user cancels the
    /// run, or the step passes a quota of /out or leaves the scratch disk too little room, the
    /// container is stopped (the runtime kills and removes it) and the reason is returned
    /// instead of a result.
    /// </summary>
    private async Task<(ContainerResult? Result, string? CancelledBecause, string? StoppedBecause)> RunWatchedAsync(string runId, ContainerSpec spec, string outDir, OutputLimits limits, CancellationToken ct)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watcher = WatchForCancelAsync(runId, cancel, watching.Token);
        var quota = WatchQuotaAsync(outDir, limits, cancel, watching.Token);
        try
        {
            var result = await runtime.RunAsync(spec, cancel.Token).ConfigureAwait(false);
            return (result, null, null);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && cancel.IsCancellationRequested)
        {
            await watching.CancelAsync().ConfigureAwait(false);
            var over = await quota.ConfigureAwait(false);
            return over is not null ? (null, null, over) : (null, await watcher.ConfigureAwait(false) ?? "run stopped", null);
        }
        finally
        {
            await watching.CancelAsync().ConfigureAwait(false);
            await watcher.ConfigureAwait(false);
            await quota.ConfigureAwait(false);
        }
    }

    private async Task<string?> WatchQuotaAsync(string outDir, OutputLimits limits, CancellationTokenSource cancel, CancellationToken watching)
    {
        try
        {
            while (true)
            {
                await Task.Delay(options.QuotaPollInterval, time, watching).ConfigureAwait(false);
                var (files, bytes) = OutputFolder.Measure(outDir, limits);
                var (free, total) = NoFollow.Space(outDir);
                var reserve = Math.Min(options.MinScratchFree, total / 10);
                var over = files > limits.MaxFiles ? $"it wrote more than {limits.MaxFiles} files and folders to /out, over its quota ({limits.FilesSource})"
                    : bytes > limits.MaxBytes ? $"it wrote more than {Quantities.FormatSize(limits.MaxBytes)} to /out, over its quota ({limits.BytesSource})"
                    : free < reserve ? $"the worker's scratch disk ({options.Scratch}) has only {Quantities.FormatSize(free)} free, less than the {Quantities.FormatSize(reserve)} kept in reserve (Worker:MinScratchFree)"
                    : null;
                if (over is not null)
                {
                    LogQuotaStop(log, outDir, over);
                    await cancel.CancelAsync().ConfigureAwait(false);
                    return over;
                }
            }
        }
        catch (OperationCanceledException) when (watching.IsCancellationRequested)
        {
            return null;
        }
    }

    private OutputLimits Limits(ExpandedStep step)
    {
        var bytes = step.Resources.DiskBytes > 0 && step.Resources.DiskBytes <= options.MaxOutputBytes
            ? (step.Resources.DiskBytes, $"resources.disk of step '{step.Name}' is {Quantities.FormatSize(step.Resources.DiskBytes)}")
            : (options.MaxOutputBytes, $"Worker:MaxOutputBytes is {Quantities.FormatSize(options.MaxOutputBytes)}");
        var files = step.Resources.Files > 0 && step.Resources.Files <= options.MaxOutputFiles
            ? (step.Resources.Files, $"resources.files of step '{step.Name}' is {step.Resources.Files}")
            : (options.MaxOutputFiles, $"Worker:MaxOutputFiles is {options.MaxOutputFiles}");
        return new OutputLimits(bytes.Item1, files.Item1, bytes.Item2, files.Item2);
    }

    private async Task<string?> WatchForCancelAsync(string runId, CancellationTokenSource cancel, CancellationToken watching)
    {
        try
        {
            while (true)
            {
                await Task.Delay(options.CancelPollInterval, time, watching).ConfigureAwait(false);
                try
                {
                    var reason = (await store.GetRunAsync(runId, watching).ConfigureAwait(false))?.StopReason;
                    if (StopReasons.IsCancel(reason))
                    {
                        LogStoppingStep(log, runId, reason!);
                        await cancel.CancelAsync().ConfigureAwait(false);
                        return reason;
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The run store is out of reach for a moment: the step goes on, and the next look may see it.
                    LogWatchFailed(log, runId, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (watching.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>
    /// Uploads the kept outputs of a finished step. The container has been removed, and
    /// <see cref="OutputFolder"/> reads /out without following any link: only regular files
    /// inside it are taken, each opened by descriptor and uploaded through that descriptor.
    /// </summary>
    private async Task<List<FileRef>> StageOutAsync(TaskRecord task, ExpandedStep step, string outDir, OutputLimits limits, StorageLocation runOutput, StringBuilder stepLog, CancellationToken ct)
    {
        var globs = step.Outputs.Select(Glob.Parse).ToList();
        var scan = OutputFolder.Collect(outDir, rel => globs.Any(g => g.IsMatch(rel)), limits);
        foreach (var warning in scan.Warnings)
        {
            stepLog.Append("=== pipelines: warning: ").Append(warning).Append(" ===\n");
        }

        var refs = new FileRef[scan.Kept.Count];
        await Parallel.ForEachAsync(
            Enumerable.Range(0, scan.Kept.Count),
            new ParallelOptions { MaxDegreeOfParallelism = options.TransferConcurrency, CancellationToken = ct },
            async (i, token) =>
            {
                var file = scan.Kept[i];
                var key = RunLayout.TaskOutput(task.TaskId, step.Name, file.Path);
                using var handle = OutputFolder.OpenKept(outDir, file.Path);

                // The store reads the file through the descriptor already judged, not by its path again.
                var digest = await runOutput.Store.UploadAsync(runOutput.Key(key), $"/proc/self/fd/{handle.DangerousGetHandle()}", token).ConfigureAwait(false);
                refs[i] = new FileRef { Key = key, Size = digest.Size, Sha256 = digest.Sha256 };
            }).ConfigureAwait(false);
        return refs.ToList();
    }

    /// <summary>
    /// Equal task ids mean equal work: a task that already succeeded in an earlier run is reused
    /// by copying its kept outputs, each checked against the sha256 recorded when it was made.
    /// </summary>
    private async Task<int?> TryReuseAsync(RunRecord run, TaskRecord task, RunDefinition definition, StorageLocation runOutput, CancellationToken ct)
    {
        var root = stores.Open(definition.Workflow.Output.Uri);
        byte[] manifestBytes;
        try
        {
            manifestBytes = await root.Store.ReadAllAsync(root.Key(RunLayout.CachePrefix + task.TaskId + ".json"), ct).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }

        CacheManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<CacheManifest>(manifestBytes);
        }
        catch (JsonException e)
        {
            // A damaged cache entry is a miss, not a failure: the task runs and writes a new one.
            LogCacheMissing(log, run.RunId, task.TaskId, "the cache entry is not valid JSON: " + e.Message);
            return null;
        }

        if (manifest is null || manifest.RunId == run.RunId)
        {
            return null;
        }

        var source = root.Child(manifest.RunId);
        var now = time.GetUtcNow();
        var rows = new List<ProvenanceRow>();
        try
        {
            foreach (var step in manifest.Rows)
            {
                foreach (var output in step.Outputs)
                {
                    if (!await CopyVerifiedAsync(source, runOutput, output.Key, output.Sha256, ct).ConfigureAwait(false))
                    {
                        LogCacheMismatch(log, run.RunId, task.TaskId, output.Key);
                        return null;
                    }
                }

                var logKey = RunLayout.TaskLog(task.TaskId, step.Step);
                await CopyVerifiedAsync(source, runOutput, logKey, null, ct).ConfigureAwait(false);
                rows.Add(new ProvenanceRow
                {
                    RunId = run.RunId,
                    TaskId = task.TaskId,
                    TaskIndex = task.Index,
                    Attempt = 1,
                    Step = step.Step,
                    Status = "cached",
                    ExitCode = step.ExitCode,
                    Image = step.Image,
                    ImageDigest = step.ImageDigest,
                    Command = step.Command,
                    Inputs = step.Inputs,
                    Outputs = step.Outputs,
                    Log = logKey,
                    StartedAt = now.UtcDateTime,
                    FinishedAt = time.GetUtcNow().UtcDateTime,
                    Worker = options.Name,
                    CachedFrom = manifest.RunId,
                });
            }
        }
        catch (ObjectNotFoundException e)
        {
            LogCacheMissing(log, run.RunId, task.TaskId, e.Message);
            return null;
        }

        var (_, remaining) = await store.CommitTaskAsync(run.RunId, task.Index, new TaskOutcome(TaskState.Cached, 0, null, time.GetUtcNow()), rows, ct).ConfigureAwait(false);
        return remaining;
    }

    /// <summary>
    /// Copies an object of an earlier run into this run through a local file, so that memory
    /// does not grow with its size, and only when its bytes still have the recorded sha256.
    /// </summary>
    private async Task<bool> CopyVerifiedAsync(StorageLocation source, StorageLocation target, string key, string? sha256, CancellationToken ct)
    {
        PrepareScratchRoot();
        var temp = Path.Combine(options.Scratch, "reuse-" + Guid.NewGuid().ToString("N"));
        try
        {
            var digest = await source.Store.DownloadAsync(source.Key(key), temp, ct).ConfigureAwait(false);
            if (sha256 is not null && !string.Equals(digest.Sha256, sha256, StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }

            await target.Store.UploadAsync(target.Key(key), temp, ct).ConfigureAwait(false);
            return true;
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private void PrepareScratchRoot()
    {
        if (!Directory.Exists(options.Scratch))
        {
            Directory.CreateDirectory(options.Scratch, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    private async Task WriteCacheEntryAsync(RunRecord run, TaskRecord task, Workflow workflow, List<ProvenanceRow> rows, CancellationToken ct)
    {
        var root = stores.Open(workflow.Output.Uri);
        var manifest = new CacheManifest(run.RunId, task.TaskId, rows.Where(r => r.Status == "succeeded").ToList());
        await root.Store.PutAsync(root.Key(RunLayout.CachePrefix + task.TaskId + ".json"), JsonSerializer.SerializeToUtf8Bytes(manifest), "application/json", ct).ConfigureAwait(false);
    }

    private ProvenanceRow Row(RunRecord run, TaskRecord task, ExpandedStep step, int attempt, string status, long? exit, List<FileRef> inputs, List<FileRef> outputs, DateTimeOffset started, string? logKey, string? error) => new()
    {
        RunId = run.RunId,
        TaskId = task.TaskId,
        TaskIndex = task.Index,
        Attempt = attempt,
        Step = step.Name,
        Status = status,
        ExitCode = exit,
        Image = step.Image,
        ImageDigest = step.ImageDigest,
        Command = step.Command.ToList(),
        Inputs = inputs,
        Outputs = outputs,
        Log = logKey,
        StartedAt = started.UtcDateTime,
        FinishedAt = time.GetUtcNow().UtcDateTime,
        Worker = options.Name,
        Error = error,
    };

    private static string Tail(string log)
    {
        var trimmed = log.TrimEnd();
        if (trimmed.Length == 0)
        {
            return "";
        }

        return ": " + (trimmed.Length > 2000 ? "..." + trimmed[^2000..] : trimmed);
    }

    private void DeleteScratch(string scratch)
    {
        try
        {
            // Never through a link, whatever the names: a container made this tree.
            OutputFolder.DeleteTree(scratch);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PipelinesException)
        {
            LogScratchLeft(log, scratch, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {Index}: {Inputs} inputs staged in {StageMs:0} ms, steps and stage-out {StepsMs:0} ms")]
    private static partial void LogTaskTimes(ILogger logger, string runId, int index, int inputs, double stageMs, double stepsMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {Index} failed as a batch: split into tasks {First}-{Last} ({Count} inputs)")]
    private static partial void LogSplit(ILogger logger, string runId, int index, int count, int first, int last);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {Index} failed: {Error}")]
    private static partial void LogTaskError(ILogger logger, string runId, int index, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {Index} step {Step} attempt {Attempt} failed: {Error}")]
    private static partial void LogStepFailed(ILogger logger, string runId, int index, string step, int attempt, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {TaskId}: cached output {Key} no longer matches its sha256; running the task again")]
    private static partial void LogCacheMismatch(ILogger logger, string runId, string taskId, string key);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {TaskId}: cached result incomplete ({Reason}); running the task again")]
    private static partial void LogCacheMissing(ILogger logger, string runId, string taskId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId}: stopping a running step: {Reason}")]
    private static partial void LogStoppingStep(ILogger logger, string runId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId}: could not look for a cancel: {Error}")]
    private static partial void LogWatchFailed(ILogger logger, string runId, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "stopping the step writing to {OutDir}: {Reason}")]
    private static partial void LogQuotaStop(ILogger logger, string outDir, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "could not delete scratch folder {Path}: {Error}")]
    private static partial void LogScratchLeft(ILogger logger, string path, string error);
}

/// <summary>What a succeeded task left, kept under the output root for reuse by later runs.</summary>
public sealed record CacheManifest(string RunId, string TaskId, List<ProvenanceRow> Rows);
