using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Telemetry;

namespace Pipelines.Worker;

/// <summary>
/// The steps of one task, in order, each attempt in a new locked-down container with the
/// task's inputs at /in, earlier steps' kept outputs under /steps and an empty /out; an attempt
/// that fails is tried again up to the step's retries. Each attempt is a provenance row, and
/// each step's log (every attempt's output, with what the engine did) is stored beside its
/// outputs. Each attempt goes through the <see cref="AttemptShell"/>, which sorts how it ended.
/// Decides how the steps went; the task shell decides what that makes of the task.
/// </summary>
internal sealed partial class StepLoop(AttemptShell shell, Staging staging, WorkerOptions options, TimeProvider time, ILogger<StepLoop> log)
{
    /// <summary>How a task's steps went: its outcome, whether one input alone could have caused a failure, and the rows.</summary>
    public sealed record Result(TaskOutcome Outcome, bool Splittable)
    {
        /// <summary>A step was vacated: the task is handed back to the queue, its rows kept for the attempt that ends it.</summary>
        public bool Vacated => VacatedLog is not null;

        /// <summary>The log of the step that was vacated, up to and with its vacated attempt, kept for the delivery that ends the task.</summary>
        public VacatedAttempts.StepLog? VacatedLog { get; init; }
    }

    /// <summary>1 once this worker has said that steps taking the default reuse run a container per task here.</summary>
    private int _saidNoWarm;

    /// <summary>The error recorded on a vacated attempt.</summary>
    public const string VacatedReason = "vacated: the machine's owner needed it back; the task went back to the queue (not a failure, not counted against retries)";

    /// <summary>
    /// Runs the steps; each step's attempts are numbered after the <paramref name="earlier"/>
    /// vacated ones, and its log goes on from theirs (the retries start afresh: a vacate is not
    /// the algorithm's failure).
    /// </summary>
    public async Task<Result> RunAsync(RunRecord run, TaskRecord task, IReadOnlyList<ExpandedStep> steps, List<FileRef> inputs, Scratch scratch, StorageLocation runOutput, List<ProvenanceRow> rows, VacatedAttempts earlier, CancellationToken ct)
    {
        var kept = new List<(string Name, string Dir)>();
        long? lastExit = null;
        var splittable = false;
        foreach (var step in steps)
        {
            var stepLog = new StringBuilder(earlier.LogOf(step.Name) ?? "");
            var succeeded = false;
            var logStored = false;
            string? error = null;
            var before = earlier.Before(step.Name);
            for (var attempt = before + 1; attempt <= before + step.Retries + 1; attempt++)
            {
                using var span = EngineTracing.Start(EngineTracing.Attempt)?.SetTag("pipelines.step", step.Name).SetTag("pipelines.attempt", attempt);
                using var scope = LogScopes.Attempt(log, step.Name, attempt);
                var started = time.GetUtcNow();
                var limits = options.LimitsFor(step.Resources, "step", step.Name);
                var last = ReferenceEquals(step, steps[^1]);
                ContainerResult? result = null;
                AttemptStop? stop = null;
                var warm = Warm(step, stepLog);

                // A container of its own writes this attempt's folder; a warm request writes its
                // container's out/, read there while the request is held (WarmRequest).
                var outDir = warm ? null : scratch.NewOut(step.Name, attempt);
                await using var request = warm ? new WarmRequest(scratch, kept) : null;
                try
                {
                    var secrets = options.SecretsFor(run.Tenant, step.Name, step.Secrets);
                    using (EngineTracing.Start(EngineTracing.Container)?.SetTag("pipelines.reuse", warm))
                    {
                        (result, stop) = warm
                            ? await RunWarmAsync(run, step, request!, limits, secrets, ct).ConfigureAwait(false)
                            : await RunOneShotAsync(run, task, step, scratch, kept, outDir!, limits, secrets, ct).ConfigureAwait(false);
                    }

                    error = AttemptError(step, result, stop);
                }
                catch (PipelinesException e) when (!ct.IsCancellationRequested && !e.RetryHelps)
                {
                    error = $"step '{step.Name}' could not run: {e.Message}";
                }

                if (stop?.Kind == AttemptStopKind.Vacated)
                {
                    // Its log (what the container printed until it was stopped) is kept with its row, for the delivery that ends the task.
                    stepLog.Append("=== pipelines: ").Append(step.Name).Append(" attempt ").Append(attempt).Append(", ").Append(VacatedReason).Append(" ===\n");
                    AppendOutput(stepLog, stop.StoppedLog);
                    rows.Add(Row(run, task, step, attempt, "vacated", null, inputs, [], started, RunLayout.TaskLog(task.TaskId, step.Name), VacatedReason));
                    return new Result(new TaskOutcome(TaskState.Queued, null, VacatedReason, time.GetUtcNow()), Splittable: false) { VacatedLog = new(step.Name, stepLog.ToString()) };
                }

                if (stop?.Kind == AttemptStopKind.Cancelled)
                {
                    // A user's cancel stopped the container: the task ends cancelled, and is not retried.
                    stepLog.Append("=== pipelines: ").Append(step.Name).Append(" attempt ").Append(attempt).Append(", stopped: ").Append(stop.Reason).Append(" ===\n");
                    AppendOutput(stepLog, stop.StoppedLog);
                    rows.Add(Row(run, task, step, attempt, "cancelled", null, inputs, [], started, RunLayout.TaskLog(task.TaskId, step.Name), error));
                    await PutLogAsync(task, step, runOutput, stepLog, ct).ConfigureAwait(false);
                    return new Result(new TaskOutcome(TaskState.Cancelled, null, error, time.GetUtcNow()), Splittable: false);
                }

                stepLog.Append("=== pipelines: ").Append(step.Name).Append(" attempt ").Append(attempt)
                    .Append(", ").Append(result is null ? "not started" : result.Error ?? "exit 0")
                    .Append(result is null ? "" : $", {result.Duration.TotalSeconds:0.000}s").Append(" ===\n");
                AppendOutput(stepLog, result?.Log ?? error);
                if (result is not null)
                {
                    AppendUse(stepLog, result);
                }

                lastExit = result?.ExitCode;
                splittable = result is { TimedOut: false, OomKilled: false } && stop is null;

                List<FileRef> outputs = [];
                IReadOnlyList<string>? outNames = null;
                if (error is null)
                {
                    try
                    {
                        using (EngineTracing.Start(EngineTracing.StageOut))
                        {
                            // The log is stored beside the outputs: once they are up, nothing
                            // more is said in it. If stage-out fails, the log is stored again,
                            // whole, when the step's attempts end (below).
                            var put = (CancellationToken token) => PutLogAsync(task, step, runOutput, stepLog, token);
                            if (request?.Out is { } held)
                            {
                                (outputs, outNames) = await staging.StageOutAsync(task, step, held, limits, runOutput, stepLog, put, ct).ConfigureAwait(false);
                            }
                            else
                            {
                                using var folder = NoFollow.OpenDirectory(outDir!);
                                outputs = (await staging.StageOutAsync(task, step, folder, limits, runOutput, stepLog, put, ct).ConfigureAwait(false)).Refs;
                            }
                        }

                        succeeded = logStored = true;
                        if (request is not null)
                        {
                            // The last step's inputs are not needed again, and its /out is taken:
                            // both are left for the lease to empty. A later step sees this one's
                            // outputs at /steps/NAME: they go to a folder of this attempt's.
                            request.Done(keepInputs: !last, outDir: last ? null : scratch.NewOut(step.Name, attempt), outNames);
                        }

                        if ((request is null ? outDir : request.KeptOut) is { } keptDir)
                        {
                            kept.Add((step.Name, keptDir));
                        }
                    }
                    catch (OutputRefusedException e)
                    {
                        // What the step left cannot be taken (a link, a fifo, a bad name, a quota):
                        // the attempt fails, like an exit code, and may be retried.
                        error = $"step '{step.Name}' left outputs that cannot be taken: {e.Message}";
                        stepLog.Append("=== pipelines: ").Append(error).Append(" ===\n");
                    }
                }

                rows.Add(Row(run, task, step, attempt, succeeded ? "succeeded" : "failed", result?.ExitCode, inputs, outputs, started, RunLayout.TaskLog(task.TaskId, step.Name), error, result?.Resources, result?.Image));
                if (succeeded)
                {
                    break;
                }

                LogStepFailed(log, run.RunId, task.Index, step.Name, attempt, error!);
            }

            if (!logStored)
            {
                await PutLogAsync(task, step, runOutput, stepLog, ct).ConfigureAwait(false);
            }

            if (!succeeded)
            {
                return new Result(new TaskOutcome(TaskState.Failed, lastExit, error, time.GetUtcNow()), splittable);
            }
        }

        return new Result(new TaskOutcome(TaskState.Succeeded, lastExit, null, time.GetUtcNow()), Splittable: false);
    }

    /// <summary>
    /// Whether this attempt is a request to a warm container: a step with reuse (the default)
    /// is, unless it took the default on a worker that cannot serve warm containers: then it runs
    /// in a container of its own, and its log and the worker's (once) say why. A step that said
    /// reuse: true itself fails there instead (<see cref="RunWarmAsync"/>).
    /// </summary>
    private bool Warm(ExpandedStep step, StringBuilder stepLog)
    {
        if (!step.Reuse || step.ReuseSaid || shell.WhyNoWarmSteps is not { } why)
        {
            return step.Reuse;
        }

        stepLog.Append("=== pipelines: ").Append(step.Name).Append(" runs in a container of its own, not a warm one: ").Append(why).Append(" ===\n");
        if (Interlocked.Exchange(ref _saidNoWarm, 1) == 0)
        {
            LogNoWarmSteps(log, why);
        }

        return false;
    }

    /// <summary>One attempt in a new container of its own, with the task's folders bound in it.</summary>
    private async Task<(ContainerResult? Result, AttemptStop? Stop)> RunOneShotAsync(RunRecord run, TaskRecord task, ExpandedStep step, Scratch scratch, List<(string Name, string Dir)> kept, string outDir, OutputLimits limits, IReadOnlyDictionary<string, string> secrets, CancellationToken ct)
    {
        var mounts = new List<Mount> { new(scratch.In, ContainerLayout.In, ReadOnly: true) };
        mounts.AddRange(kept.Select(k => new Mount(k.Dir, ContainerLayout.StepFolder(k.Name), ReadOnly: true)));
        mounts.Add(new Mount(outDir, ContainerLayout.Out, ReadOnly: false));
        var labels = new Dictionary<string, string>
        {
            ["org.pipelines.run"] = run.RunId,
            ["org.pipelines.task"] = task.TaskId,
            ["org.pipelines.step"] = step.Name,
        };
        var spec = new ContainerSpec(step.ImageDigest, step.Command, step.Env, mounts, step.Resources, labels) { Secrets = secrets, ImageName = step.Image };
        await using var end = await shell.RunAsync(new Attempt(limits, step.Resources.MemoryBytes) { RunId = run.RunId }, spec, ct).ConfigureAwait(false);
        return (end.Result, end.Stop);
    }

    /// <summary>
    /// One attempt (reuse: true) as a request to a warm container of this run's step: the task's
    /// inputs and earlier steps' outputs are moved into the container's folders for the request,
    /// and the lease is held by <paramref name="request"/> until the attempt is settled, so that
    /// stage-out reads what the request left in the container's /out itself (as a container of
    /// its own would have left it, judged the same way) and what is not needed again is left for
    /// the lease to empty (<see cref="WarmRequest"/>). The quota watch measures the container's
    /// /out while the request runs.
    /// </summary>
    private async Task<(ContainerResult? Result, AttemptStop? Stop)> RunWarmAsync(RunRecord run, ExpandedStep step, WarmRequest request, OutputLimits limits, IReadOnlyDictionary<string, string> secrets, CancellationToken ct)
    {
        if (!shell.CanWarm)
        {
            throw new PipelinesException($"step '{step.Name}' asks for reuse: true, but this worker has no warm pool (it needs the Docker engine)", retryHelps: false);
        }

        var attempt = new Attempt(limits, step.Resources.MemoryBytes)
        {
            Warm = WarmSteps.SpecOf(run.RunId, step.Name, step.ImageDigest, step.Resources, secrets, options),
            RunId = run.RunId,
            ImageName = step.Image,
        };
        var end = await shell.RunAsync(
            attempt,
            async (lease, token) =>
            {
                try
                {
                    request.MoveIn(lease);
                    return await lease.RunAsync(step.Command, step.Env, step.Resources.Timeout, token).ConfigureAwait(false);
                }
                catch
                {
                    // Stopped, broken or an outage: everything goes back now, before the shell
                    // gives the lease up on its way out.
                    request.MoveBack();
                    throw;
                }
            },
            ct).ConfigureAwait(false);
        request.Hold(end);
        return (end.Result?.WithImage(step.ImageDigest, end.Image), end.Stop);
    }

    /// <summary>The provenance row of one attempt of one step, naming the attempt's span.</summary>
    public ProvenanceRow Row(RunRecord run, TaskRecord task, ExpandedStep step, int attempt, string status, long? exit, List<FileRef> inputs, List<FileRef> outputs, DateTimeOffset started, string? logKey, string? error, ResourceUse? used = null, ImageArrival? image = null) => Ended(step, new()
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
        CpuSeconds = used?.CpuSeconds,
        PeakMemoryBytes = (long?)used?.PeakMemoryBytes,
        ReadBytes = (long?)used?.ReadBytes,
        WrittenBytes = (long?)used?.WrittenBytes,
        WallSeconds = used?.WallSeconds,
        ImageLoadSeconds = image?.Seconds,
        ImageLoad = image?.Text,
        TraceId = Activity.Current?.TraceId.ToHexString(),
        SpanId = Activity.Current?.SpanId.ToHexString(),
    });

    /// <summary>Every attempt ends in exactly one row: so the attempt is counted, and its span told how it ended, here.</summary>
    private static ProvenanceRow Ended(ExpandedStep step, ProvenanceRow row)
    {
        EngineMetrics.StepEnded(row.Status, step.Reuse, (row.FinishedAt - row.StartedAt).TotalSeconds);
        Activity.Current?.SetTag("pipelines.step.status", row.Status);
        Activity.Current.Failed(row.Status == "failed" ? row.Error : null);
        return row;
    }

    /// <summary>An attempt's output in its step's log, ended by a newline.</summary>
    private static void AppendOutput(StringBuilder stepLog, string? text) =>
        stepLog.Append(text ?? "").Append(text is { Length: > 0 } && !text.EndsWith('\n') ? "\n" : "");

    /// <summary>What the attempt used, and why anything of it was not measured (nothing is left out silently).</summary>
    private static void AppendUse(StringBuilder stepLog, ContainerResult result)
    {
        var u = result.Resources;
        stepLog.Append(CultureInfo.InvariantCulture, $"=== pipelines: used cpu {Seconds(u.CpuSeconds)}, peak memory {Bytes(u.PeakMemoryBytes)}, read {Bytes(u.ReadBytes)}, written {Bytes(u.WrittenBytes)}, wall {Seconds(u.WallSeconds)} ===\n");
        foreach (var note in result.ResourceNotes)
        {
            stepLog.Append("=== pipelines: warning: ").Append(note).Append(" ===\n");
        }

        static string Seconds(double? s) => s is { } v ? v.ToString("0.000", CultureInfo.InvariantCulture) + " s" : "not measured";

        static string Bytes(double? b) => b is { } v ? v.ToString("0", CultureInfo.InvariantCulture) + " bytes" : "not measured";
    }

    private static string? AttemptError(ExpandedStep step, ContainerResult? result, AttemptStop? stop) => stop switch
    {
        { Kind: AttemptStopKind.OverQuota or AttemptStopKind.Cancelled or AttemptStopKind.Vacated } => $"step '{step.Name}' was stopped: {stop.Reason}",
        not null => $"step '{step.Name}' could not run: {stop.Reason}",
        _ when result!.Succeeded => null,
        _ => $"step '{step.Name}' {result.Error}" + Tail(result.Log),
    };

    private static Task PutLogAsync(TaskRecord task, ExpandedStep step, StorageLocation runOutput, StringBuilder stepLog, CancellationToken ct) =>
        runOutput.Store.PutAsync(runOutput.Key(RunLayout.TaskLog(task.TaskId, step.Name)), Encoding.UTF8.GetBytes(stepLog.ToString()), "text/plain; charset=utf-8", ct);

    private static string Tail(string log)
    {
        var trimmed = log.TrimEnd();
        if (trimmed.Length == 0)
        {
            return "";
        }

        return ": " + PrintedText.Quotable(trimmed.Length > 2000 ? "..." + trimmed[^2000..] : trimmed);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "steps that take reuse by default run a container per task on this worker: {Why}")]
    private static partial void LogNoWarmSteps(ILogger logger, string why);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {Index} step {Step} attempt {Attempt} failed: {Error}")]
    private static partial void LogStepFailed(ILogger logger, string runId, int index, string step, int attempt, string error);
}
