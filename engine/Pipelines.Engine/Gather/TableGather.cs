using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Gather;

/// <summary>
/// One part of a gathered table: a kept output (its key in the run's folder) of a task that ended
/// well, and the keys of that task's inputs (for the rows' <c>_source_file</c>).
/// </summary>
internal sealed record TablePartRef(string TaskId, string Key, IReadOnlyList<string>? Inputs = null);

/// <summary>What one gather wrote: its rows, its result keys, and the parts it left out (with why).</summary>
internal sealed record GatheredTable(string Name, long Rows, IReadOnlyList<string> Keys, IReadOnlyList<string> Problems);

/// <summary>
/// Merges the parts of one gather into results/ in two passes over local copies, so memory does
/// not grow with the table: the first pass checks every part, counts its rows and infers the
/// column types; the second writes Parquet (in bounded row groups) and CSV to local files,
/// which are then uploaded as streams.
/// </summary>
internal static class TableGather
{
    // Parts are downloaded a few at a time: enough to hide a store's latency, few enough for a shared disk.
    private const int Downloads = 4;

    // More tasks than this that left nothing to gather are one warning, not one each.
    private const int WarningsPerTask = 5;

    /// <summary>The columns every gathered table ends with (docs/workflow-spec.md): task id, input key, part key.</summary>
    public static IReadOnlyList<string> LineageColumns { get; } = [TaskIdColumn, SourceFileColumn, PartColumn];

    public const string TaskIdColumn = "_task_id";
    public const string SourceFileColumn = "_source_file";
    public const string PartColumn = "_part";

    /// <summary>
    /// The parts of a gather, in task order then key order, and a warning for each task that
    /// ended well but left no output the gather matches (and for a gather that matches nothing).
    /// </summary>
    /// <remarks>The provenance is read as a stream (the gather's tasks.parquet): only the parts are kept.</remarks>
    public static async Task<(IReadOnlyList<TablePartRef> Parts, IReadOnlyList<string> Warnings)> SelectPartsAsync(GatherSpec spec, IReadOnlyList<TaskRecord> tasks, IAsyncEnumerable<ProvenanceRow> provenance, CancellationToken cancellationToken)
    {
        var glob = Glob.Parse(spec.FromGlob);
        var parts = new List<TablePartRef>();

        // Only tasks that ended well contribute: a failed or split task's earlier steps may have
        // succeeded, but its inputs are reported as failed (or run again as tasks of their own).
        var contributing = tasks.Where(t => t.State is TaskState.Succeeded or TaskState.Cached).ToDictionary(t => t.Index);
        var withParts = new HashSet<int>();
        await foreach (var row in provenance.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (!(row.Step == spec.FromStep && row.Status is "succeeded" or "cached" && contributing.ContainsKey(row.TaskIndex)))
            {
                continue;
            }

            var prefix = RunLayout.TaskStepPrefix(row.TaskId, row.Step);
            foreach (var o in row.Outputs.Where(o => o.Key.StartsWith(prefix, StringComparison.Ordinal) && glob.IsMatch(o.Key[prefix.Length..])))
            {
                parts.Add(new TablePartRef(row.TaskId, o.Key, contributing[row.TaskIndex].Inputs.Select(i => i.Key).ToList()));
                withParts.Add(row.TaskIndex);
            }
        }

        var from = spec.FromStep + "/" + spec.FromGlob;
        var empty = contributing.Values.Where(t => !withParts.Contains(t.Index)).OrderBy(t => t.Index).ToList();
        var warnings = new List<string>();
        if (empty.Count > WarningsPerTask)
        {
            var some = string.Join(", ", empty.Take(WarningsPerTask).Select(t => $"{t.Index} ({t.TaskId})"));
            warnings.Add($"gather '{spec.Name}': {empty.Count} tasks that ended well left no output matching {from}: tasks {some}, ...");
        }
        else
        {
            warnings.AddRange(empty.Select(t => $"gather '{spec.Name}': task {t.Index} ({t.TaskId}) {(t.State == TaskState.Cached ? "was cached" : "succeeded")} but left no output matching {from}"));
        }

        if (parts.Count == 0)
        {
            warnings.Add($"gather '{spec.Name}': no output of any task matches {from}: the table is empty");
        }

        return (parts, warnings);
    }

    /// <summary>
    /// Gathers the parts into results/. With <paramref name="leaveOutMalformed"/> a malformed part
    /// is left out and named in <see cref="GatheredTable.Problems"/>; without, it throws
    /// <see cref="MalformedPartException"/> and nothing is written. <paramref name="scratch"/> is
    /// a local folder the caller deletes.
    /// </summary>
    public static async Task<GatheredTable> GatherAsync(GatherSpec spec, IReadOnlyList<TablePartRef> parts, StorageLocation output, bool leaveOutMalformed, string scratch, CancellationToken ct)
    {
        var folder = Path.Combine(scratch, "gather-" + spec.Name);
        Directory.CreateDirectory(folder);
        var files = parts.Select((_, i) => Path.Combine(folder, $"part-{i:D6}")).ToArray();
        await Parallel.ForEachAsync(Enumerable.Range(0, parts.Count), new ParallelOptions { MaxDegreeOfParallelism = Downloads, CancellationToken = ct }, async (i, token) =>
        {
            await output.Store.DownloadAsync(output.Key(parts[i].Key), files[i], token).ConfigureAwait(false);
        }).ConfigureAwait(false);

        // Pass 1: check every part, and infer the column types from the parts that are kept.
        IReadOnlyList<string>? columns = spec.Header ? null : spec.Columns;
        ColumnTypes? types = columns is null ? null : new ColumnTypes(columns.Count);
        var kept = new List<int>();
        var problems = new List<string>();
        for (var i = 0; i < parts.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                var (header, partTypes) = Check(files[i], parts[i], spec, columns);
                if (header is not null && columns is null)
                {
                    // The first kept part's header names the columns, or `columns` renames them.
                    columns = spec.Columns is not null && spec.Columns.Count == header.Count ? spec.Columns : header;
                    types = new ColumnTypes(columns.Count);
                }

                if (partTypes is not null)
                {
                    types!.Merge(partTypes);
                }

                kept.Add(i);
            }
            catch (MalformedPartException e) when (leaveOutMalformed)
            {
                problems.Add(e.Message);
            }
        }

        // Pass 2: the kept parts again, in order, into the result files, each row with its lineage:
        // the task, the input file it comes from, and the part it was read from.
        columns ??= spec.Columns ?? [];
        if (columns.FirstOrDefault(LineageColumns.Contains) is { } taken)
        {
            throw new PipelinesException($"gather '{spec.Name}': the parts have a column named {taken}, which the gather adds itself ({string.Join(", ", LineageColumns)}); name the columns otherwise with `columns`", retryHelps: false);
        }

        var allColumns = columns.Concat(LineageColumns).ToList();
        var allTypes = Enumerable.Range(0, columns.Count).Select(i => types?[i] ?? ColumnType.Text).Concat(LineageColumns.Select(_ => ColumnType.Text)).ToList();
        var parquetPath = spec.To.Contains(ResultFormat.Parquet) ? Path.Combine(folder, "result.parquet") : null;
        var csvPath = spec.To.Contains(ResultFormat.Csv) ? Path.Combine(folder, "result.csv") : null;
        long rows;
        await using (var parquet = parquetPath is null ? null : Create(parquetPath))
        await using (var csv = csvPath is null ? null : Create(csvPath))
        {
            await using var writer = await TableWriter.CreateAsync(allColumns, allTypes, parquet, csv, ct).ConfigureAwait(false);
            foreach (var i in kept)
            {
                using var reader = TableReader.Open(OpenRead(files[i]), PartName(parts[i]), spec);
                var source = new SourceFile(parts[i].Inputs ?? []);
                while (reader.TryRead(out var row))
                {
                    var withLineage = new string?[row.Length + LineageColumns.Count];
                    row.CopyTo(withLineage, 0);
                    withLineage[row.Length] = parts[i].TaskId;
                    withLineage[row.Length + 1] = source.Of(row);
                    withLineage[row.Length + 2] = parts[i].Key;
                    await writer.WriteAsync(withLineage, ct).ConfigureAwait(false);
                }
            }

            await writer.CompleteAsync(ct).ConfigureAwait(false);
            rows = writer.Rows;
        }

        var keys = new List<string>();
        foreach (var format in spec.To)
        {
            var (ext, path, type) = format == ResultFormat.Parquet
                ? ("parquet", parquetPath!, "application/vnd.apache.parquet")
                : ("csv", csvPath!, "text/csv");
            var key = RunLayout.Result(spec.Name, ext);
            await output.Store.UploadAsync(output.Key(key), path, type, ct).ConfigureAwait(false);
            keys.Add(key);
        }

        return new GatheredTable(spec.Name, rows, keys, problems);
    }

    /// <summary>Reads a part through: its header (checked against the columns so far) and its column types (null without rows).</summary>
    private static (IReadOnlyList<string>? Header, ColumnTypes? Types) Check(string file, TablePartRef part, GatherSpec spec, IReadOnlyList<string>? columns)
    {
        using var reader = TableReader.Open(OpenRead(file), PartName(part), spec);
        var header = reader.Header;
        if (spec.Header && header is not null && columns is not null
            && !header.SequenceEqual(spec.Columns is not null && spec.Columns.Count == header.Count ? header : columns))
        {
            throw new MalformedPartException($"gather '{spec.Name}': {PartName(part)} has the header ({string.Join(", ", header)}), but earlier parts have ({string.Join(", ", columns)})");
        }

        ColumnTypes? types = null;
        while (reader.TryRead(out var row))
        {
            types ??= new ColumnTypes(row.Length);
            types.Observe(row);
        }

        return (header, types);
    }

    private static string PartName(TablePartRef part) => $"task {part.TaskId}: {part.Key}";

    // Unbuffered: the table reader reads in blocks of its own (TableReader.BufferSize).
    private static FileStream OpenRead(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);

    private static FileStream Create(string path) =>
        new(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 65536);
}
