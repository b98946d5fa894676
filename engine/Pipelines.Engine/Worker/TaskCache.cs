using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Pipelines.Explain;
using Pipelines.Planning;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Worker;

/// <summary>
/// Reuse of earlier results. Equal task ids mean equal work: a task that already succeeded in
/// an earlier run of the same output root is reused by copying its kept outputs, each checked
/// against the sha256 recorded when it was made. A succeeded task leaves a manifest under the
/// output root (<see cref="RunLayout.CachePrefix"/>) for later runs.
/// </summary>
internal sealed partial class TaskCache(WorkerOptions options, TimeProvider time, ILogger<TaskCache> log)
{
    /// <summary>
    /// Whether an earlier run's result could be copied whole into <paramref name="runOutput"/>:
    /// the provenance rows of the reused task, or why it runs instead (no entry, and how the
    /// nearest earlier task of its workflow and unit differed; a damaged entry; an output
    /// missing or changed). An outage throws and is waited out by the shell.
    /// </summary>
    public async Task<CacheCheck> CheckAsync(RunRecord run, TaskRecord task, RunDefinition definition, StorageLocation root, StorageLocation runOutput, CancellationToken ct)
    {
        // A miss is the common answer (every task of a first run): read without an exception.
        if (await root.Store.TryReadAllAsync(root.Key(RunLayout.CachePrefix + task.TaskId + ".json"), ct).ConfigureAwait(false) is not { } manifestBytes)
        {
            return new CacheCheck(null, await NearestEarlierAsync(run, task, definition, root, ct).ConfigureAwait(false));
        }

        CacheManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize(manifestBytes, WorkerJson.Default.CacheManifest);
        }
        catch (JsonException e)
        {
            // A damaged cache entry is a miss, not a failure: the task runs and writes a new one.
            LogCacheMissing(log, run.RunId, task.TaskId, "the cache entry is not valid JSON: " + e.Message);
            return Miss(RanBecause.EntryDamaged, "not valid JSON: " + e.Message, null);
        }

        if (manifest?.Rows is null)
        {
            return Miss(RanBecause.EntryDamaged, "it lists no steps", manifest?.RunId);
        }

        if (manifest.RunId == run.RunId)
        {
            return Miss(RanBecause.NoEarlierRun, "the cache entry for this task id is this run's own", null);
        }

        var source = root.Child(manifest.RunId);
        var now = time.GetUtcNow();
        var rows = new List<ProvenanceRow>();
        var copying = "";
        try
        {
            foreach (var step in manifest.Rows)
            {
                foreach (var output in step.Outputs)
                {
                    copying = output.Key;
                    if (!await CopyVerifiedAsync(source, runOutput, output.Key, output.Sha256, ct).ConfigureAwait(false))
                    {
                        LogCacheMismatch(log, run.RunId, task.TaskId, output.Key);
                        return Miss(RanBecause.OutputMismatch, output.Key, manifest.RunId);
                    }
                }

                var logKey = RunLayout.TaskLog(task.TaskId, step.Step);
                copying = logKey;
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
            return Miss(RanBecause.OutputMissing, copying, manifest.RunId);
        }

        // The unit's nearest earlier task is now this one, taken from the cache.
        await WriteUnitAsync(run, task, definition, root, ct).ConfigureAwait(false);
        return new CacheCheck(rows, null);
    }

    /// <summary>Records a succeeded task's result for later runs: its manifest with its identity, and its unit's latest task.</summary>
    public async Task WriteAsync(RunRecord run, TaskRecord task, RunDefinition definition, StorageLocation root, IReadOnlyList<ProvenanceRow> rows, CancellationToken ct)
    {
        var identity = Planner.Identity(definition.Workflow, definition.ImageDigests, task.Inputs, task.Captures);
        var manifest = new CacheManifest(run.RunId, task.TaskId, rows.Where(r => r.Status == "succeeded").ToList()) { Identity = identity };
        // Side by side: one round trip rather than two. A unit entry whose task's manifest is
        // missing (a crash between the two) is read as "earlier identity unknown" already.
        await Task.WhenAll(
            root.Store.PutAsync(root.Key(RunLayout.CachePrefix + task.TaskId + ".json"), JsonSerializer.SerializeToUtf8Bytes(manifest, WorkerJson.Default.CacheManifest), "application/json", ct),
            WriteUnitAsync(run, task, definition, root, ct)).ConfigureAwait(false);
    }

    /// <summary>
    /// The unit a task belongs to across runs: its captures (group_by, samplesheet) when it has
    /// any, else its sorted input keys. With the workflow's name it names one small index entry,
    /// so the nearest earlier task of a unit is one read, not a scan of the cache.
    /// </summary>
    public static string UnitKey(string workflow, TaskRecord task) =>
        RunLayout.UnitPrefix + TaskIdentity.UnitDigest(workflow, task.Inputs, task.Captures)[..32] + ".json";

    private Task WriteUnitAsync(RunRecord run, TaskRecord task, RunDefinition definition, StorageLocation root, CancellationToken ct)
    {
        var entry = new UnitEntry(definition.Workflow.Name, run.RunId, task.TaskId);
        return root.Store.PutAsync(root.Key(UnitKey(definition.Workflow.Name, task)), JsonSerializer.SerializeToUtf8Bytes(entry, WorkerJson.Default.UnitEntry), "application/json", ct);
    }

    /// <summary>Why a task with no cache entry runs: its unit's nearest earlier task, and how its identity differed.</summary>
    private async Task<RanBecause> NearestEarlierAsync(RunRecord run, TaskRecord task, RunDefinition definition, StorageLocation root, CancellationToken ct)
    {
        UnitEntry? unit;
        try
        {
            if (await root.Store.TryReadAllAsync(root.Key(UnitKey(definition.Workflow.Name, task)), ct).ConfigureAwait(false) is not { } unitBytes)
            {
                return new RanBecause(RanBecause.NoEarlierRun);
            }

            unit = JsonSerializer.Deserialize(unitBytes, WorkerJson.Default.UnitEntry);
        }
        catch (JsonException e)
        {
            LogUnitDamaged(log, run.RunId, task.TaskId, e.Message);
            return new RanBecause(RanBecause.NoEarlierRun, "the unit's index entry is not valid JSON: " + e.Message);
        }

        if (unit?.TaskId is null || unit.RunId is null)
        {
            return new RanBecause(RanBecause.NoEarlierRun, "the unit's index entry names no task");
        }

        CacheManifest? earlier;
        try
        {
            earlier = JsonSerializer.Deserialize(await root.Store.ReadAllAsync(root.Key(RunLayout.CachePrefix + unit.TaskId + ".json"), ct).ConfigureAwait(false), WorkerJson.Default.CacheManifest);
        }
        catch (Exception e) when (e is ObjectNotFoundException or JsonException)
        {
            return new RanBecause(RanBecause.EarlierIdentityUnknown, "its cache entry cannot be read: " + e.Message, unit.RunId, unit.TaskId);
        }

        if (earlier?.Identity is null)
        {
            return new RanBecause(RanBecause.EarlierIdentityUnknown, null, unit.RunId, unit.TaskId);
        }

        var now = Planner.Identity(definition.Workflow, definition.ImageDigests, task.Inputs, task.Captures);
        return new RanBecause(RanBecause.Changed, null, earlier.RunId, earlier.TaskId, IdentityDiff.Between(earlier.Identity, now));
    }

    private static CacheCheck Miss(string reason, string? detail, string? earlierRun) => new(null, new RanBecause(reason, detail, earlierRun));

    /// <summary>
    /// Copies an object of an earlier run into this run through a local file, so that memory
    /// does not grow with its size, and only when its bytes still have the recorded sha256.
    /// </summary>
    private async Task<bool> CopyVerifiedAsync(StorageLocation source, StorageLocation target, string key, string? sha256, CancellationToken ct)
    {
        Scratch.PrepareRoot(options);
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {TaskId}: cached output {Key} no longer matches its sha256; running the task again")]
    private static partial void LogCacheMismatch(ILogger logger, string runId, string taskId, string key);

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} task {TaskId}: the unit's index entry is damaged ({Reason}); explained as no earlier run")]
    private static partial void LogUnitDamaged(ILogger logger, string runId, string taskId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {TaskId}: cached result incomplete ({Reason}); running the task again")]
    private static partial void LogCacheMissing(ILogger logger, string runId, string taskId, string reason);
}

/// <summary>What a succeeded task left, kept under the output root for reuse by later runs, with the identity it was made with.</summary>
internal sealed record CacheManifest(string RunId, string TaskId, List<ProvenanceRow> Rows)
{
    /// <summary>Null in an entry written before identity format 2.</summary>
    public TaskIdentity? Identity { get; init; }
}

/// <summary>The latest task of one workflow and unit in an output location (<see cref="TaskCache.UnitKey"/>).</summary>
internal sealed record UnitEntry(
    [property: JsonPropertyName("workflow")] string Workflow,
    [property: JsonPropertyName("run_id")] string RunId,
    [property: JsonPropertyName("task_id")] string TaskId);

/// <summary>What the cache said: the reused task's rows, or why the task runs.</summary>
internal sealed record CacheCheck(IReadOnlyList<ProvenanceRow>? Reused, RanBecause? Miss);
