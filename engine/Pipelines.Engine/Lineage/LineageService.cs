using Pipelines.Gather;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Lineage;

/// <summary>
/// Says what produced a file of a run, or a row of a gathered table, from the run folder alone
/// (run.json and provenance/tasks.parquet, read one row group at a time), so that a folder copied
/// elsewhere still answers. With a run store, a run still going (no tasks.parquet yet) answers
/// from the store's provenance rows. The CLI's `lineage` and the server's /api/lineage both ask here.
/// </summary>
public sealed class LineageService(ObjectStoreFactory stores, IRunStore? runStore)
{
    /// <summary>
    /// The lineage of <see cref="LineageRequest.Uri"/>: a local path or an s3:// URI of a file under
    /// a run folder. A mistake (no run folder above it, not a file a run writes, no such row) is a
    /// <see cref="PipelinesException"/> that says what is wrong; an outage is thrown as it is.
    /// </summary>
    public async Task<LineageAnswer> ExplainAsync(LineageRequest request, CancellationToken cancellationToken)
    {
        if (request.Row is not null && request.Key is not null)
        {
            throw Mistake("give --row or --key, not both");
        }

        if (request.Row is < 1)
        {
            throw Mistake($"row {request.Row} does not exist: rows are numbered from 1");
        }

        var (folder, key) = await LocateAsync(request.Uri, cancellationToken).ConfigureAwait(false);
        var run = await ReadRunAsync(folder.Location, folder.RunId, folder.FromStore, cancellationToken).ConfigureAwait(false);
        if (key.StartsWith("results/", StringComparison.Ordinal))
        {
            return await ExplainResultAsync(request, folder, run, key, cancellationToken).ConfigureAwait(false);
        }

        if (request.Row is not null || request.Key is not null)
        {
            throw Mistake($"--row and --key name a row of a gathered table (results/<name>.parquet or .csv); {key} is not one");
        }

        var parts = key.Split('/');
        if (parts.Length < 3 || parts[0] != "tasks")
        {
            throw Mistake($"{request.Uri} is not a task output or a gathered results file of run {run.RunId}: expected tasks/<task-id>/<step>/<file>, tasks/<task-id>/<step>.log or results/<name>.parquet");
        }

        var taskId = parts[1];
        var rows = await TaskRowsAsync(folder, taskId, cancellationToken).ConfigureAwait(false);
        if (rows.Count == 0)
        {
            throw Mistake($"run {run.RunId} has no task {taskId} in its provenance" + (folder.FromStore ? " (the task has not ended yet)" : ""));
        }

        if (parts.Length == 3 && parts[2].EndsWith(".log", StringComparison.Ordinal))
        {
            var step = parts[2][..^".log".Length];
            var attempts = rows.Where(r => r.Step == step).ToList();
            if (attempts.Count == 0)
            {
                throw Mistake($"task {taskId} of run {run.RunId} has no step {step} in its provenance");
            }

            attempts.Reverse();
            return new LineageAnswer { Uri = request.Uri, Kind = "task log", Key = key, Run = run, Steps = attempts.Select(Step).ToList() };
        }

        var producer = rows.LastOrDefault(r => r.Status is "succeeded" or "cached" && r.Outputs.Any(o => o.Key == key))
            ?? rows.LastOrDefault(r => r.Outputs.Any(o => o.Key == key))
            ?? throw Mistake($"no step of task {taskId} in run {run.RunId} recorded the output {key} (outputs are recorded as tasks/<task-id>/<step>/<file>; the step may have kept other files)");
        return new LineageAnswer { Uri = request.Uri, Kind = "task output", Key = key, Run = run, Steps = Chain(rows, producer) };
    }

    private async Task<LineageAnswer> ExplainResultAsync(LineageRequest request, RunFolder folder, LineageRun run, string key, CancellationToken ct)
    {
        var isCsv = key.EndsWith(".csv", StringComparison.Ordinal);
        if (!isCsv && !key.EndsWith(".parquet", StringComparison.Ordinal))
        {
            throw Mistake($"{key} is not a gathered table: expected results/<name>.parquet or results/<name>.csv");
        }

        if (request.Row is null && request.Key is null)
        {
            return new LineageAnswer { Uri = request.Uri, Kind = "results table", Key = key, Run = run, Table = await TableAsync(folder, key, ct).ConfigureAwait(false) };
        }

        var local = Path.Combine(Path.GetTempPath(), "pipelines-lineage-" + Guid.NewGuid().ToString("N"));
        try
        {
            try
            {
                await folder.Location.Store.DownloadAsync(folder.Location.Key(key), local, ct).ConfigureAwait(false);
            }
            catch (ObjectNotFoundException)
            {
                throw Mistake($"run {run.RunId} has no {key} (its gathers wrote: see run.json's results)");
            }

            var (number, total, cells) = isCsv
                ? await ResultTable.FindCsvAsync(local, key, request, ct).ConfigureAwait(false)
                : await ResultTable.FindParquetAsync(local, key, request, ct).ConfigureAwait(false);
            var taskId = cells.GetValueOrDefault(TableGather.TaskIdColumn)
                ?? throw Mistake($"{key} has no {TableGather.TaskIdColumn} column: it was not gathered by Pipelines, or its columns were changed");
            var rows = await TaskRowsAsync(folder, taskId, ct).ConfigureAwait(false);
            var part = cells.GetValueOrDefault(TableGather.PartColumn);
            var partStep = part?.Split('/') is { Length: >= 4 } p ? p[2] : null;
            var producer = rows.LastOrDefault(r => r.Status is "succeeded" or "cached" && (part is null ? true : r.Outputs.Any(o => o.Key == part)) && (partStep is null || r.Step == partStep))
                ?? throw Mistake($"row {number} of {key} names task {taskId}, which has no step that ended well in the provenance of run {run.RunId}");
            var inputs = rows.SelectMany(r => r.Inputs).Where(i => !i.Key.StartsWith("tasks/", StringComparison.Ordinal)).DistinctBy(i => i.Key).ToList();
            string? source;
            if (cells.TryGetValue(TableGather.SourceFileColumn, out var recorded))
            {
                source = recorded;
            }
            else
            {
                // A table gathered before the column existed: the same rule as the gather's, on the row's cells.
                var user = cells.Where(c => !c.Key.StartsWith('_')).Select(c => c.Value).ToArray();
                source = new SourceFile(inputs.Select(i => i.Key).ToList()).Of(user);
            }

            var sourceFile = source is null ? null : inputs.FirstOrDefault(i => i.Key == source) is { } f ? new LineageFile(f.Key, f.Size, f.Sha256) : new LineageFile(source, null, null);
            return new LineageAnswer
            {
                Uri = request.Uri,
                Kind = "results row",
                Key = key,
                Run = run,
                Row = new LineageRow(number, total, cells, taskId, sourceFile, part),
                Steps = Chain(rows, producer),
            };
        }
        finally
        {
            File.Delete(local);
        }
    }

    /// <summary>The producer, then the steps before it in the same attempt chain (the last that ended well of each earlier step).</summary>
    private static List<LineageStep> Chain(List<ProvenanceRow> rows, ProvenanceRow producer)
    {
        var chain = new List<LineageStep> { Step(producer) };
        // Rows come by step in the workflow's order, then by attempt: the steps before the producer's are before it.
        var earlier = rows.Take(rows.IndexOf(producer))
            .Where(r => r.Step != producer.Step && r.Status is "succeeded" or "cached")
            .GroupBy(r => r.Step, StringComparer.Ordinal)
            .Select(g => g.Last())
            .Reverse();
        chain.AddRange(earlier.Select(Step));
        return chain;
    }

    private async Task<LineageTable> TableAsync(RunFolder folder, string key, CancellationToken ct)
    {
        var attempts = new SortedDictionary<string, SortedDictionary<string, long>>(StringComparer.Ordinal);
        var images = new SortedDictionary<string, string>(StringComparer.Ordinal);
        await foreach (var row in ProvenanceAsync(folder, ct).ConfigureAwait(false))
        {
            if (!attempts.TryGetValue(row.Step, out var byStatus))
            {
                byStatus = new SortedDictionary<string, long>(StringComparer.Ordinal);
                attempts[row.Step] = byStatus;
            }

            byStatus[row.Status] = byStatus.GetValueOrDefault(row.Status) + 1;
            images.TryAdd(row.Image, row.ImageDigest);
        }

        long? rows = null;
        if (!folder.FromStore)
        {
            try
            {
                var summary = await RunSummary.ReadAsync(folder.Location, ct).ConfigureAwait(false);
                rows = summary.Results.Values.FirstOrDefault(t => t.Files.Contains(key))?.Rows;
            }
            catch (ObjectNotFoundException)
            {
                // A run folder without run.json (a gather that did not end): the rows are not counted.
            }
        }

        return new LineageTable(rows, attempts.ToDictionary(a => a.Key, a => (IReadOnlyDictionary<string, long>)a.Value, StringComparer.Ordinal), images);
    }

    /// <summary>Every provenance row of one task, in file order (by step, then attempt).</summary>
    private async Task<List<ProvenanceRow>> TaskRowsAsync(RunFolder folder, string taskId, CancellationToken ct)
    {
        var rows = new List<ProvenanceRow>();
        await foreach (var row in ProvenanceAsync(folder, ct).ConfigureAwait(false))
        {
            if (row.TaskId == taskId)
            {
                rows.Add(row);
            }
        }

        return rows;
    }

    private async IAsyncEnumerable<ProvenanceRow> ProvenanceAsync(RunFolder folder, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        if (folder.FromStore)
        {
            foreach (var row in await runStore!.GetProvenanceAsync(folder.RunId, ct).ConfigureAwait(false))
            {
                yield return row;
            }

            yield break;
        }

        var local = Path.Combine(Path.GetTempPath(), "pipelines-lineage-" + Guid.NewGuid().ToString("N") + ".parquet");
        try
        {
            await folder.Location.Store.DownloadAsync(folder.Location.Key(RunLayout.ProvenanceTasks), local, ct).ConfigureAwait(false);
            await using var file = new FileStream(local, FileMode.Open, FileAccess.Read, FileShare.Read, 65536);
            await foreach (var entry in ProvenanceFile.ReadAsync(file, ct).ConfigureAwait(false))
            {
                yield return entry.Row;
            }
        }
        finally
        {
            File.Delete(local);
        }
    }

    /// <summary>
    /// The run folder above a URI and the URI's key in it: the deepest folder above a tasks/,
    /// results/ or provenance/ part of the path that holds provenance/tasks.parquet (a run that
    /// ended) or, with a run store, is the output folder of a run the store knows.
    /// </summary>
    private async Task<(RunFolder Folder, string Key)> LocateAsync(string uri, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(uri))
        {
            throw Mistake("no URI given: name a task output or a results file, as a local path or an s3:// URI");
        }

        var full = uri.StartsWith("s3://", StringComparison.Ordinal) ? uri
            : Path.GetFullPath(uri.StartsWith("file://", StringComparison.Ordinal) ? uri["file://".Length..] : uri);
        var candidates = new List<int>();
        foreach (var marker in new[] { "/tasks/", "/results/", "/provenance/" })
        {
            for (var i = full.IndexOf(marker, StringComparison.Ordinal); i >= 0; i = full.IndexOf(marker, i + 1, StringComparison.Ordinal))
            {
                candidates.Add(i);
            }
        }

        foreach (var i in candidates.OrderDescending())
        {
            var folderUri = full[..(i + 1)];
            var key = full[(i + 1)..];
            var location = stores.Open(folderUri);
            if (await location.Store.StatAsync(location.Key(RunLayout.ProvenanceTasks), ct).ConfigureAwait(false) is not null)
            {
                var runId = folderUri.TrimEnd('/').Split('/')[^1];
                return (new RunFolder(location, runId, FromStore: false), key);
            }

            if (runStore is not null)
            {
                var runId = folderUri.TrimEnd('/').Split('/')[^1];
                var run = await runStore.GetRunAsync(runId, ct).ConfigureAwait(false);
                if (run is not null && SameFolder(stores.Open(run.OutputUri).Uri, location.Uri))
                {
                    return (new RunFolder(location, runId, FromStore: true), key);
                }
            }
        }

        throw Mistake(candidates.Count == 0
            ? $"{uri} is not in a run folder: lineage explains tasks/<task-id>/<step>/<file> and results/<name>.parquet of a run (<output.uri>/<run-id>/)"
            : $"no run folder above {uri} has {RunLayout.ProvenanceTasks}" + (runStore is null ? " (a run still going is known only to the run store: configure Postgres)" : ", and the run store knows no run there"));
    }

    private async Task<LineageRun> ReadRunAsync(StorageLocation location, string folderRunId, bool fromStore, CancellationToken ct)
    {
        if (!fromStore)
        {
            try
            {
                var s = await RunSummary.ReadAsync(location, ct).ConfigureAwait(false);
                return new LineageRun(s.RunId, s.Workflow, s.Status, location.Uri, "run folder", s.CreatedAt, s.FinishedAt);
            }
            catch (ObjectNotFoundException)
            {
                // A gather that wrote its provenance but not run.json (it did not end): the provenance still answers.
                return new LineageRun(folderRunId, "", "not finished (no run.json)", location.Uri, "run folder", null, null);
            }
        }

        var run = (await runStore!.GetRunAsync(folderRunId, ct).ConfigureAwait(false))!;
        return new LineageRun(run.RunId, run.WorkflowName, run.State.Name(), location.Uri, "run store", run.CreatedAt, run.FinishedAt);
    }

    private static bool SameFolder(string a, string b) => string.Equals(a.TrimEnd('/'), b.TrimEnd('/'), StringComparison.Ordinal);

    private static LineageStep Step(ProvenanceRow r) => new(
        r.TaskIndex, r.TaskId, r.Step, r.Attempt, r.Status, r.ExitCode, r.Image, r.ImageDigest, r.Command, r.Worker,
        DateTime.SpecifyKind(r.StartedAt, DateTimeKind.Utc), DateTime.SpecifyKind(r.FinishedAt, DateTimeKind.Utc), r.Log, r.CachedFrom, r.Error,
        r.Inputs.Select(i => new LineageFile(i.Key, i.Size, i.Sha256)).ToList(),
        r.Outputs.Select(o => new LineageFile(o.Key, o.Size, o.Sha256)).ToList())
    {
        ImageLoad = r.ImageLoad,
        ImageLoadSeconds = r.ImageLoadSeconds,
    };

    internal static PipelinesException Mistake(string message) => new(message, retryHelps: false);

    private sealed record RunFolder(StorageLocation Location, string RunId, bool FromStore);
}
