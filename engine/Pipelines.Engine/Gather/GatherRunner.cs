using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Parquet.Serialization;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Gather;

/// <summary>
/// After every task has ended: merges the tables of the kept outputs into results/, writes the
/// provenance (tasks.parquet, RO-Crate) and run.json, and ends the run. It reads only task
/// outputs, never inputs. run.json is written last: a run folder without it is not finished.
/// </summary>
public sealed partial class GatherRunner(IRunStore store, ObjectStoreFactory stores, TimeProvider time, ILogger<GatherRunner> log)
{
    public static string EngineVersion { get; } =
        typeof(GatherRunner).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public async Task RunAsync(string runId, string gatherJobId, CancellationToken cancellationToken)
    {
        if (!await store.TryBeginGatherAsync(runId, gatherJobId, cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        var run = (await store.GetRunAsync(runId, cancellationToken).ConfigureAwait(false))!;
        var definition = RunDefinition.FromJson(run.DefinitionJson);
        var workflow = definition.Workflow;
        var output = stores.Open(workflow.Output.Uri).Child(runId);
        var tasks = await store.GetTasksAsync(runId, cancellationToken).ConfigureAwait(false);
        var stepOrder = workflow.Steps.Select((s, i) => (s.Name, i)).ToDictionary(x => x.Name, x => x.i, StringComparer.Ordinal);
        var provenance = (await store.GetProvenanceAsync(runId, cancellationToken).ConfigureAwait(false))
            .OrderBy(r => r.TaskIndex).ThenBy(r => stepOrder.GetValueOrDefault(r.Step)).ThenBy(r => r.Attempt).ToList();
        var counts = await store.CountTasksAsync(runId, cancellationToken).ConfigureAwait(false);

        string? error = null;
        var results = new List<(string Name, int Rows, List<string> Keys)>();
        var cancelled = StopReasons.IsCancel(run.StopReason);
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
                try
                {
                    results.Add(await GatherTableAsync(spec, tasks, provenance, output, cancellationToken).ConfigureAwait(false));
                }
                catch (PipelinesException e)
                {
                    error = e.Message;
                    LogGatherFailed(log, runId, spec.Name, e.Message);
                    break;
                }
            }
        }

        await WriteProvenanceAsync(provenance, output, cancellationToken).ConfigureAwait(false);
        var state = cancelled ? RunState.Cancelled
            : error is not null || counts.Failed > 0 ? RunState.Failed
            : RunState.Succeeded;
        var finished = time.GetUtcNow();
        await output.Store.PutAsync(output.Key(RunLayout.RoCrate), RoCrate.Build(run, workflow, tasks, provenance, results.SelectMany(r => r.Keys).ToList(), state, finished), "application/ld+json", cancellationToken).ConfigureAwait(false);
        var runJson = new JsonObject
        {
            ["run_id"] = runId,
            ["workflow"] = workflow.Name,
            ["status"] = state.Name(),
            ["error"] = error,
            ["counts"] = new JsonObject
            {
                ["tasks"] = counts.Total,
                ["succeeded"] = counts.Succeeded,
                ["cached"] = counts.Cached,
                ["failed"] = counts.Failed,
                ["cancelled"] = counts.Cancelled,
                ["split"] = counts.Split,
                ["inputs"] = tasks.Sum(t => t.Inputs.Count),
            },
            ["results"] = new JsonObject(results.Select(r => KeyValuePair.Create(r.Name, (JsonNode?)new JsonObject
            {
                ["rows"] = r.Rows,
                ["files"] = new JsonArray(r.Keys.Select(k => (JsonNode?)JsonValue.Create(k)).ToArray()),
            }))),
            ["created_at"] = run.CreatedAt.UtcDateTime.ToString("O"),
            ["finished_at"] = finished.UtcDateTime.ToString("O"),
            ["duration_seconds"] = Math.Round((finished - run.CreatedAt).TotalSeconds, 3),
            ["input_uri"] = workflow.Input.Uri,
            ["output_uri"] = output.Uri,
            ["images"] = new JsonObject(definition.ImageDigests.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
            ["engine"] = new JsonObject { ["name"] = "pipelines", ["version"] = EngineVersion },
        };
        await output.Store.PutAsync(output.Key(RunLayout.RunJson), JsonSerializer.SerializeToUtf8Bytes(runJson, new JsonSerializerOptions { WriteIndented = true }), "application/json", cancellationToken).ConfigureAwait(false);
        await store.FinishRunAsync(runId, state, error, finished, cancellationToken).ConfigureAwait(false);
        LogRunFinished(log, runId, state.Name(), counts.Total, counts.Failed);
    }

    private static async Task<(string Name, int Rows, List<string> Keys)> GatherTableAsync(GatherSpec spec, IReadOnlyList<TaskRecord> tasks, List<ProvenanceRow> provenance, StorageLocation output, CancellationToken ct)
    {
        var glob = Glob.Parse(spec.FromGlob);
        var parts = new List<(string TaskId, string Key)>();

        // Only tasks that ended well contribute: a failed or split task's earlier steps may have
        // succeeded, but its inputs are reported as failed (or run again as tasks of their own).
        var contributing = tasks.Where(t => t.State is TaskState.Succeeded or TaskState.Cached).Select(t => t.Index).ToHashSet();
        foreach (var row in provenance.Where(r => r.Step == spec.FromStep && r.Status is "succeeded" or "cached" && contributing.Contains(r.TaskIndex)))
        {
            var prefix = RunLayout.TaskStepPrefix(row.TaskId, row.Step);
            parts.AddRange(row.Outputs.Where(o => o.Key.StartsWith(prefix, StringComparison.Ordinal) && glob.IsMatch(o.Key[prefix.Length..])).Select(o => (row.TaskId, o.Key)));
        }

        var contents = new byte[parts.Count][];
        await Parallel.ForEachAsync(Enumerable.Range(0, parts.Count), new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = ct }, async (i, token) =>
        {
            contents[i] = await output.Store.ReadAllAsync(output.Key(parts[i].Key), token).ConfigureAwait(false);
        }).ConfigureAwait(false);

        IReadOnlyList<string>? columns = spec.Header ? null : spec.Columns;
        var rows = new List<string?[]>();
        for (var i = 0; i < parts.Count; i++)
        {
            var part = TablePart.Read(contents[i], parts[i].Key, spec);
            if (spec.Header && part.Header is not null)
            {
                if (columns is null)
                {
                    columns = spec.Columns is not null && spec.Columns.Count == part.Header.Count ? spec.Columns : part.Header;
                }
                else if (!part.Header.SequenceEqual(spec.Columns is not null && spec.Columns.Count == part.Header.Count ? part.Header : columns))
                {
                    throw new PipelinesException($"gather '{spec.Name}': {parts[i].Key} has the header ({string.Join(", ", part.Header)}), but earlier parts have ({string.Join(", ", columns)})", retryHelps: false);
                }
            }

            rows.AddRange(part.Rows.Select(r => r.Append(parts[i].TaskId).ToArray()));
        }

        columns ??= spec.Columns ?? [];
        var allColumns = columns.Append("_task_id").ToList();
        var keys = new List<string>();
        foreach (var format in spec.To)
        {
            var (ext, bytes, type) = format == ResultFormat.Parquet
                ? ("parquet", await TableWriter.ToParquetAsync(allColumns, rows, ct).ConfigureAwait(false), "application/vnd.apache.parquet")
                : ("csv", TableWriter.ToCsv(allColumns, rows), "text/csv");
            var key = RunLayout.Result(spec.Name, ext);
            await output.Store.PutAsync(output.Key(key), bytes, type, ct).ConfigureAwait(false);
            keys.Add(key);
        }

        return (spec.Name, rows.Count, keys);
    }

    private static async Task WriteProvenanceAsync(List<ProvenanceRow> provenance, StorageLocation output, CancellationToken ct)
    {
        using var stream = new MemoryStream();
        await ParquetSerializer.SerializeAsync(provenance, stream, cancellationToken: ct).ConfigureAwait(false);
        await output.Store.PutAsync(output.Key(RunLayout.ProvenanceTasks), stream.ToArray(), "application/vnd.apache.parquet", ct).ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId}: gather {Name} failed: {Error}")]
    private static partial void LogGatherFailed(ILogger logger, string runId, string name, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} ended {State}: {Tasks} tasks, {Failed} failed")]
    private static partial void LogRunFinished(ILogger logger, string runId, string state, int tasks, int failed);
}
