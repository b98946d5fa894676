using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Pipelines.Canary;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Queue;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Telemetry;
using Pipelines.Usage;
using Pipelines.Worker;

namespace Pipelines.Gather;

/// <summary>
/// After every task has ended: merges the tables of the kept outputs into results/, writes the
/// provenance (tasks.parquet, RO-Crate) and run.json, and ends the run. It reads only task
/// outputs, never inputs. run.json is written last: a run folder without it is not finished.
/// </summary>
internal sealed partial class GatherRunner(IRunStore store, ITaskQueue queue, ObjectStoreFactory stores, OutageGate gate, TimeProvider time, ILogger<GatherRunner> log, IUsageStore usage, PriceSheets prices) : IGatherHandler
{
    /// <summary>
    /// Gathers a run once its tasks have ended. An outage on the way (the bucket or the run store
    /// out of reach) is waited out in-process with backoff (<see cref="OutageGate"/>): a gather
    /// begun by this job id may begin again, and every write goes to a deterministic key.
    /// What is not an outage no retry helps (the temporary folder's disk full under the run's
    /// provenance file, a bug): the run ends failed with the reason now, as a table's failure
    /// does, rather than staying 'gathering' through every retry of the job (about 48 minutes).
    /// </summary>
    public async Task RunAsync(string runId, string gatherJobId, CancellationToken cancellationToken)
    {
        try
        {
            await gate.RunAsync(
                async () =>
                {
                    await GatherAsync(runId, gatherJobId, cancellationToken).ConfigureAwait(false);
                    return true;
                },
                OutageGate.IsOutage,
                $"run {runId} gather",
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && !OutageGate.IsOutage(e))
        {
            await EndFailedAsync(runId, $"the gather failed: {PipelinesException.Describe(e)}" + (e is IOException ? $" (its local files are under {Path.GetTempPath()}, TMPDIR)" : ""), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Ends a run failed with <paramref name="reason"/> when its gather can be delivered no more (Hangfire gave up: see EndWhenJobFails).</summary>
    public async Task EndFailedAsync(string runId, string reason, CancellationToken cancellationToken)
    {
        var run = await store.GetRunAsync(runId, cancellationToken).ConfigureAwait(false);
        if (run is not null && !run.State.IsTerminal())
        {
            await store.FinishRunAsync(runId, RunState.Failed, reason, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
            Telemetry.EngineMetrics.RunEnded(RunState.Failed.Name());
            LogRunEndedFailed(log, runId, reason);
        }
    }

    private async Task GatherAsync(string runId, string gatherJobId, CancellationToken cancellationToken)
    {
        if (await store.GetRunAsync(runId, cancellationToken).ConfigureAwait(false) is not { } before)
        {
            return;
        }

        var link = RunDefinition.FromJson(before.DefinitionJson).Canary;
        if (link?.Role == CanaryRole.Current && before.State.IsTerminal())
        {
            // A redelivery after this run ended: the candidate's gather may not have been asked for yet.
            await queue.EnqueueGatherAsync(link.CandidateRunId, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (link?.Role == CanaryRole.Candidate
            && (await store.GetRunAsync(link.CurrentRunId, cancellationToken).ConfigureAwait(false))?.State.IsTerminal() != true)
        {
            // The comparison needs the current run ended; its gather asks for this one again when it has.
            return;
        }

        if (!await store.TryBeginGatherAsync(runId, gatherJobId, cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        var run = (await store.GetRunAsync(runId, cancellationToken).ConfigureAwait(false))!;
        var definition = RunDefinition.FromJson(run.DefinitionJson);
        using var span = EngineTracing.StartUnder(EngineTracing.Gather, definition.TraceParent, ActivityKind.Consumer)?.SetTag("pipelines.run.id", runId);
        using var scope = LogScopes.Run(log, runId);
        var started = Stopwatch.StartNew();
        var workflow = definition.Workflow;
        var output = definition.Folder(stores, runId);
        var tasks = await store.GetTasksAsync(runId, cancellationToken).ConfigureAwait(false);
        var stepOrder = workflow.Steps.Select((s, i) => (s.Name, i)).ToDictionary(x => x.Name, x => x.i, StringComparer.Ordinal);
        var counts = await store.CountTasksAsync(runId, cancellationToken).ConfigureAwait(false);

        string? error = null;
        var results = new List<GatheredTable>();
        var warnings = new List<string>();
        var problems = new List<string>();
        var cancelled = StopReasons.IsCancel(run.StopReason);
        var clock = Stopwatch.StartNew();
        var phases = new List<string>();
        void Phase(string name)
        {
            phases.Add($"{name} {clock.ElapsedMilliseconds} ms");
            clock.Restart();
        }

        // Parts and result files are local copies here: the tables stream through the disk, not memory.
        var scratch = Path.Combine(Path.GetTempPath(), "pipelines-gather", runId + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(scratch);
        try
        {
            // The run's provenance streams from the store into tasks.parquet, a row group at a
            // time; every later reader (the tables' parts, the report, the RO-Crate) reads that
            // file a row group at a time, so memory does not grow with the run's rows. A run
            // whose rows are one group is read from the rows the writer held instead.
            var provenance = Path.Combine(scratch, "tasks.parquet");
            var (_, held) = await ProvenanceFile.WriteAndHoldAsync(InStepOrder(store.ReadProvenanceAsync(runId, cancellationToken), stepOrder, cancellationToken), provenance, cancellationToken).ConfigureAwait(false);
            IAsyncEnumerable<ProvenanceRow> Provenance() => held?.ToAsyncEnumerable() ?? ProvenanceFile.ReadRowsAsync(provenance, cancellationToken);
            Phase("provenance");
            if (cancelled)
            {
                // A user's cancel: no tables from a partial run; the provenance and run.json still say what ran.
                error = run.StopReason;
            }
            else if (workflow.OnError == OnError.Fail && counts.Failed > 0)
            {
                error = run.StopReason ?? "a task failed and on_error is fail";
            }
            else
            {
                foreach (var spec in workflow.Gather)
                {
                    var (parts, partWarnings) = await TableGather.SelectPartsAsync(spec, tasks, Provenance(), cancellationToken).ConfigureAwait(false);
                    warnings.AddRange(partWarnings);
                    try
                    {
                        var table = await TableGather.GatherAsync(spec, parts, output, leaveOutMalformed: workflow.OnError == OnError.Continue, scratch, cancellationToken).ConfigureAwait(false);
                        results.Add(table);
                        problems.AddRange(table.Problems);
                        foreach (var p in table.Problems)
                        {
                            LogPartLeftOut(log, runId, spec.Name, p);
                        }
                    }
                    catch (PipelinesException e) when (!e.RetryHelps)
                    {
                        error = e.Message;
                        LogGatherFailed(log, runId, spec.Name, e.Message);
                        break;
                    }
                    catch (IOException e)
                    {
                        // A local file (the temporary folder on a full disk, or a local output folder): the run
                        // ends failed and says so, rather than staying 'gathering'.
                        error = $"gather '{spec.Name}': reading or writing local files failed (temporary folder {scratch}): {e.Message}";
                        LogGatherFailed(log, runId, spec.Name, e.Message);
                        break;
                    }
                    catch (Exception e) when (!OutageGate.IsOutage(e))
                    {
                        // Anything unforeseen (a table the writer cannot take, a bug): the run ends failed
                        // with the reason now. Outages go on: the gather is waited out and tried again.
                        error = $"gather '{spec.Name}' failed: {PipelinesException.Describe(e)}";
                        LogGatherFailed(log, runId, spec.Name, error);
                        break;
                    }
                }

                if (error is null && problems.Count > 0)
                {
                    error = $"{problems.Count} malformed table part(s) left out of the gathered results (see problems in run.json)";
                }
            }

            Phase("tables");
            await output.Store.UploadAsync(output.Key(RunLayout.ProvenanceTasks), provenance, "application/vnd.apache.parquet", cancellationToken).ConfigureAwait(false);
            Phase("provenance upload");
            if (definition.IsCandidate && !cancelled)
            {
                // The canary's one home: the candidate's gather, which runs once both sides have ended.
                // The comparison holds both runs' rows (canaries compare runs of a sample, not of millions).
                var rows = await Provenance().ToListAsync(cancellationToken).ConfigureAwait(false);
                var compareError = await CompareAsync(run, definition, tasks, rows, output, scratch, cancellationToken).ConfigureAwait(false);
                error ??= compareError;
                Phase("canary comparison");
            }

            var state = cancelled ? RunState.Cancelled
                : error is not null || counts.Failed > 0 ? RunState.Failed
                : RunState.Succeeded;
            var finished = time.GetUtcNow();
            var summary = new RunSummary
            {
                RunId = runId,
                Workflow = workflow.Name,
                Status = state.Name(),
                Error = error,
                Counts = new RunSummaryCounts(counts.Total, counts.Succeeded, counts.Cached, counts.Failed, counts.Cancelled, counts.Split, tasks.Sum(t => t.Inputs.Count)),
                Results = results.ToDictionary(r => r.Name, r => new RunSummaryTable(r.Rows, r.Keys), StringComparer.Ordinal),
                Problems = problems,
                Warnings = warnings,
                CreatedAt = run.CreatedAt,
                FinishedAt = finished,
                DurationSeconds = Math.Round((finished - run.CreatedAt).TotalSeconds, 3),
                InputUri = workflow.Input.Uri,
                OutputUri = output.Uri,
                Images = definition.ImageDigests.ToDictionary(StringComparer.Ordinal),
                Engine = new RunSummaryEngine("pipelines", EngineVersion.Current),
                TraceId = EngineTracing.TraceIdOf(definition.TraceParent),

                // Every delivery has ended (remaining is 0), and each wrote its record with its end.
                // Read here, not beside the tables: the records are held while read, and read beside the
                // tables' kept rows a 20,000-task run peaked 30 MiB above main's (one run each).
                Usage = RunUsage.Of(await usage.ForRunAsync(runId, cancellationToken).ConfigureAwait(false), prices.For(run.Tenant)),
            };

            // The report is drawn from tasks.parquet as written (or the rows it was written from,
            // when held), as the Runs page draws it from the run folder. A report that cannot be drawn is a warning of the run, never its failure.
            // The report and the RO-Crate read the same rows and write files of their own: they are
            // made side by side (the gather is otherwise one thread, and a small machine's other core idles).
            var resultKeys = results.SelectMany(r => r.Keys).ToList();
            var report = Task.Run(() => WriteReportAsync(summary, workflow, provenance, held, output, cancellationToken), cancellationToken);
            var crate = Task.Run(() => WriteCrateAsync(run, workflow, definition, tasks, Provenance, resultKeys, state, finished, output, scratch, cancellationToken), cancellationToken);
            try
            {
                await Task.WhenAll(report, crate).ConfigureAwait(false);
            }
            catch when (report.IsFaulted && crate.IsFaulted)
            {
                // Both failed: the report's is thrown (an outage is waited out, the gather made
                // again); the crate's is said, not dropped.
                LogCrateFailedToo(log, runId, crate.Exception!.GetBaseException().Message);
                throw;
            }

            if (await report.ConfigureAwait(false) is { } reportWarning)
            {
                summary = summary with { Warnings = [.. warnings, reportWarning] };
            }

            Phase("report and crate");
            await output.Store.PutAsync(output.Key(RunLayout.RunJson), summary.ToJson(), "application/json", cancellationToken).ConfigureAwait(false);
            Phase("run.json");
            await store.FinishRunAsync(runId, state, error, finished, cancellationToken).ConfigureAwait(false);
            EngineMetrics.RunEnded(state.Name());
            EngineMetrics.Gathered(state.Name(), started.Elapsed.TotalSeconds);
            span?.SetTag("pipelines.run.state", state.Name());
            span.Failed(error);
            LogRunFinished(log, runId, state.Name(), counts.Total, counts.Failed, string.Join(", ", phases));
            if (definition.Canary is { Role: CanaryRole.Current } current)
            {
                await EndedCurrentAsync(current, state, error, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            DeleteScratch(scratch);
        }
    }

    /// <summary>
    /// The current side of a canary has ended: a cancel stops the candidate too, and the
    /// candidate's gather is asked for (it waits for this run; at least once: a duplicate is harmless).
    /// </summary>
    private async Task EndedCurrentAsync(CanaryLink link, RunState state, string? error, CancellationToken ct)
    {
        if (state == RunState.Cancelled)
        {
            try
            {
                await store.RequestStopAsync(link.CandidateRunId, $"the current run {link.CurrentRunId} was cancelled: {error}", ct).ConfigureAwait(false);
            }
            catch (UnknownRunException)
            {
                // The candidate was never created (its submission stopped between the two runs): nothing to stop.
            }
        }

        await queue.EnqueueGatherAsync(link.CandidateRunId, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Compares a canary's candidate run with the current run and writes canary/diff.json and
    /// canary/summary.txt; the error that ends the candidate failed when the comparison cannot be made.
    /// </summary>
    private async Task<string?> CompareAsync(RunRecord run, RunDefinition definition, IReadOnlyList<TaskRecord> tasks, IReadOnlyList<ProvenanceRow> provenance, StorageLocation output, string scratch, CancellationToken ct)
    {
        var link = definition.Canary!;
        var currentRun = await store.GetRunAsync(link.CurrentRunId, ct).ConfigureAwait(false)
            ?? throw new UnknownRunException(link.CurrentRunId);
        var currentDefinition = RunDefinition.FromJson(currentRun.DefinitionJson);
        var currentFolder = currentDefinition.Folder(stores, currentRun.RunId);
        try
        {
            var current = new CanaryRun(currentRun, currentDefinition, await store.GetTasksAsync(currentRun.RunId, ct).ConfigureAwait(false), await store.GetProvenanceAsync(currentRun.RunId, ct).ConfigureAwait(false), currentFolder);
            var diff = await CanaryCompare.CompareAsync(current, new CanaryRun(run, definition, tasks, provenance, output), scratch, ct).ConfigureAwait(false);
            await currentFolder.Store.PutAsync(currentFolder.Key(CanaryLink.DiffJson), diff.ToJson(), "application/json", ct).ConfigureAwait(false);
            await currentFolder.Store.PutAsync(currentFolder.Key(CanaryLink.SummaryText), System.Text.Encoding.UTF8.GetBytes(diff.ToText()), "text/plain; charset=utf-8", ct).ConfigureAwait(false);
            LogCanary(log, currentRun.RunId, run.RunId, diff.Verdict);
            return null;
        }
        catch (Exception e) when (!OutageGate.IsOutage(e) && e is not OperationCanceledException)
        {
            var why = $"the canary's comparison failed: {PipelinesException.Describe(e)}";
            LogGatherFailed(log, run.RunId, "canary", why);
            return why;
        }
    }

    private static async Task WriteCrateAsync(RunRecord run, Workflow workflow, RunDefinition definition, IReadOnlyList<TaskRecord> tasks, Func<IAsyncEnumerable<ProvenanceRow>> provenance, IReadOnlyList<string> resultKeys, RunState state, DateTimeOffset finished, StorageLocation output, string scratch, CancellationToken ct)
    {
        var crate = Path.Combine(scratch, "ro-crate-metadata.json");
        await using (var file = new FileStream(crate, FileMode.CreateNew, FileAccess.Write, FileShare.None, 65536))
        {
            await RoCrate.WriteAsync(file, run, workflow, definition.ImageDigests, tasks, provenance, resultKeys, state, finished, ct).ConfigureAwait(false);
        }

        await output.Store.UploadAsync(output.Key(RunLayout.RoCrate), crate, "application/ld+json", ct).ConfigureAwait(false);
    }

    private async Task<string?> WriteReportAsync(RunSummary summary, Workflow workflow, string provenance, IReadOnlyList<ProvenanceRow>? held, StorageLocation output, CancellationToken ct)
    {
        byte[] html;
        try
        {
            var steps = workflow.Steps.Select(s => s.Name).ToList();
            if (held is not null)
            {
                // The same page as from the file (RunReport.Build): the rows it was written from.
                html = RunReport.Build(summary, steps, held);
            }
            else
            {
                await using var file = new FileStream(provenance, FileMode.Open, FileAccess.Read, FileShare.Read, 65536);
                html = await RunReport.BuildAsync(summary, steps, file, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (!OutageGate.IsOutage(e) && e is not OperationCanceledException)
        {
            LogReportFailed(log, summary.RunId, PipelinesException.Describe(e));
            return $"{RunLayout.Report} was not written: {PipelinesException.Describe(e)}";
        }

        await output.Store.PutAsync(output.Key(RunLayout.Report), html, "text/html; charset=utf-8", ct).ConfigureAwait(false);
        return null;
    }

    /// <summary>
    /// The store's rows (by task, then as each commit recorded its steps, then by attempt) with
    /// each task's rows in the workflow's step order, then by attempt: one task's rows held at a time.
    /// </summary>
    private static async IAsyncEnumerable<ProvenanceRow> InStepOrder(IAsyncEnumerable<ProvenanceRow> rows, Dictionary<string, int> stepOrder, [EnumeratorCancellation] CancellationToken ct)
    {
        var task = new List<ProvenanceRow>();
        await foreach (var row in rows.WithCancellation(ct).ConfigureAwait(false))
        {
            if (task.Count > 0 && task[0].TaskIndex != row.TaskIndex)
            {
                foreach (var r in Ordered())
                {
                    yield return r;
                }

                task.Clear();
            }

            task.Add(row);
        }

        foreach (var r in Ordered())
        {
            yield return r;
        }

        List<ProvenanceRow> Ordered() => task.OrderBy(r => stepOrder.GetValueOrDefault(r.Step)).ThenBy(r => r.Attempt).ToList();
    }

    private void DeleteScratch(string scratch)
    {
        try
        {
            Directory.Delete(scratch, recursive: true);
        }
        catch (IOException e)
        {
            // A leftover in the temporary folder must not fail a run whose results are written.
            LogScratchLeft(log, scratch, e.Message);
        }
        catch (UnauthorizedAccessException e)
        {
            LogScratchLeft(log, scratch, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} ended failed: {Reason}")]
    private static partial void LogRunEndedFailed(ILogger logger, string runId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId}: gather {Name} failed: {Error}")]
    private static partial void LogGatherFailed(ILogger logger, string runId, string name, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId}: gather {Name} left out a part: {Problem}")]
    private static partial void LogPartLeftOut(ILogger logger, string runId, string name, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "could not delete the gather's temporary folder {Folder}: {Error}")]
    private static partial void LogScratchLeft(ILogger logger, string folder, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId}: the RO-Crate failed too, beside the report: {Error}")]
    private static partial void LogCrateFailedToo(ILogger logger, string runId, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId}: report.html was not written: {Error}")]
    private static partial void LogReportFailed(ILogger logger, string runId, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId}: canary {Candidate} compared: {Verdict}")]
    private static partial void LogCanary(ILogger logger, string runId, string candidate, string verdict);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} ended {State}: {Tasks} tasks, {Failed} failed (gather: {Phases})")]
    private static partial void LogRunFinished(ILogger logger, string runId, string state, int tasks, int failed, string phases);
}
