using System.Text.Json;
using Microsoft.Extensions.Logging;
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
    /// The provenance rows of the reused task when an earlier run's result could be copied
    /// whole into <paramref name="runOutput"/>; null when there is none, or it is damaged or
    /// incomplete (the task then runs).
    /// </summary>
    public async Task<IReadOnlyList<ProvenanceRow>?> TryReuseAsync(RunRecord run, TaskRecord task, StorageLocation root, StorageLocation runOutput, CancellationToken ct)
    {
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

        if (manifest?.Rows is null || manifest.RunId == run.RunId)
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

        return rows;
    }

    /// <summary>Records a succeeded task's result for later runs.</summary>
    public Task WriteAsync(RunRecord run, TaskRecord task, StorageLocation root, IReadOnlyList<ProvenanceRow> rows, CancellationToken ct)
    {
        var manifest = new CacheManifest(run.RunId, task.TaskId, rows.Where(r => r.Status == "succeeded").ToList());
        return root.Store.PutAsync(root.Key(RunLayout.CachePrefix + task.TaskId + ".json"), JsonSerializer.SerializeToUtf8Bytes(manifest), "application/json", ct);
    }

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

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} task {TaskId}: cached result incomplete ({Reason}); running the task again")]
    private static partial void LogCacheMissing(ILogger logger, string runId, string taskId, string reason);
}

/// <summary>What a succeeded task left, kept under the output root for reuse by later runs.</summary>
internal sealed record CacheManifest(string RunId, string TaskId, List<ProvenanceRow> Rows);
