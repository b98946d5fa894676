using Parquet.Serialization;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Explain;

/// <summary>
/// The one home of explain: a run's tasks and provenance rows, from the run store or from the
/// run folder's provenance/tasks.parquet (a finished embedded run), read for why each task
/// ran or where it was taken from. What a task ran because of was decided and recorded when
/// the cache was consulted (<see cref="RanBecause"/>), so explaining reads and never guesses.
/// </summary>
public static class Explainer
{
    /// <summary>One task, named by its index or its task id; null when the run has no such task.</summary>
    public static TaskExplanation? Task(string runId, IReadOnlyList<ProvenanceRow> rows, IReadOnlyList<TaskRecord>? tasks, string task)
    {
        var names = TaskName.Matcher(task);
        return Tasks(runId, rows, tasks).FirstOrDefault(t => names(t.TaskIndex, t.TaskId));
    }

    /// <summary>The whole run: cached, ran, and the reasons counted (each changed component once per task).</summary>
    public static RunExplanation Run(string runId, IReadOnlyList<ProvenanceRow> rows, IReadOnlyList<TaskRecord>? tasks)
    {
        var all = Tasks(runId, rows, tasks);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        int cached = 0, ran = 0, notRun = 0;
        foreach (var t in all)
        {
            if (t.CachedFrom is not null)
            {
                cached++;
                continue;
            }

            if (t.RanBecause is not { } why)
            {
                notRun++;
                continue;
            }

            ran++;
            var reasons = why.Reason == RanBecause.Changed && why.Changes is { Count: > 0 } changes
                ? changes.Select(c => c.Kind).Distinct()
                : [Name(why)];
            foreach (var r in reasons)
            {
                counts[r] = counts.GetValueOrDefault(r) + 1;
            }
        }

        return new RunExplanation(runId, all.Count, cached, ran, notRun, counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => new ReasonCount(kv.Key, kv.Value)).ToList());
    }

    /// <summary>A run's provenance rows and tasks from the run store; null when the run does not exist.</summary>
    public static async Task<(IReadOnlyList<ProvenanceRow> Rows, IReadOnlyList<TaskRecord> Tasks)?> ReadRunStoreAsync(IRunStore store, string runId, CancellationToken cancellationToken)
    {
        if (await store.GetRunAsync(runId, cancellationToken).ConfigureAwait(false) is null)
        {
            return null;
        }

        var rows = await store.GetProvenanceAsync(runId, cancellationToken).ConfigureAwait(false);
        return (rows, await store.GetTasksAsync(runId, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>The provenance rows a finished run left in its folder (provenance/tasks.parquet).</summary>
    public static async Task<IReadOnlyList<ProvenanceRow>> ReadRunFolderAsync(StorageLocation runOutput, string scratch, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(scratch);
        var path = Path.Combine(scratch, "explain-" + Guid.NewGuid().ToString("N") + ".parquet");
        try
        {
            await runOutput.Store.DownloadAsync(runOutput.Key(RunLayout.ProvenanceTasks), path, cancellationToken).ConfigureAwait(false);
            await using var file = File.OpenRead(path);
            return (await ParquetSerializer.DeserializeAsync<ProvenanceRow>(file, cancellationToken: cancellationToken).ConfigureAwait(false)).Data.ToList();
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string Name(RanBecause why) => why.Reason switch
    {
        RanBecause.NoEarlierRun => "no earlier run",
        RanBecause.EarlierIdentityUnknown => "earlier identity unknown",
        RanBecause.Changed => "changed (no component recorded)",
        RanBecause.EntryDamaged => "cache entry damaged",
        RanBecause.OutputMissing => "cached output missing",
        RanBecause.OutputMismatch => "cached output changed",
        _ => why.Reason,
    };

    private static List<TaskExplanation> Tasks(string runId, IReadOnlyList<ProvenanceRow> rows, IReadOnlyList<TaskRecord>? tasks)
    {
        var byTask = rows.GroupBy(r => r.TaskIndex).ToDictionary(g => g.Key, g => g.ToList());
        var indexes = (tasks?.Select(t => t.Index) ?? []).Union(byTask.Keys).Order().ToList();
        var records = tasks?.ToDictionary(t => t.Index) ?? [];
        return indexes.Select(i =>
        {
            var own = byTask.GetValueOrDefault(i) ?? [];
            var record = records.GetValueOrDefault(i);
            var cachedFrom = own.Select(r => r.CachedFrom).FirstOrDefault(c => c is not null);
            var state = record?.State.Name() ?? (cachedFrom is not null ? "cached" : own.LastOrDefault()?.Status ?? "unknown");
            var why = RanBecause.FromJson(own.Select(r => r.RanBecause).FirstOrDefault(r => r is not null));
            return new TaskExplanation(runId, i, record?.TaskId ?? own[0].TaskId, state, cachedFrom, cachedFrom is null ? why : null);
        }).ToList();
    }
}
