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
    // Parts are read a few at a time: enough to hide a store's latency and use every core, few
    // enough for a shared disk; a window of them is read before it is folded in order.
    private const int Readers = 4;
    private const int Window = 256;

    /// <summary>A part this size or smaller is read whole into memory and parsed once.</summary>
    internal const int SmallPart = 64 * 1024;

    /// <summary>
    /// What the rows kept from small parts for pass 2 may take on the heap, as <see cref="HeldRows"/>
    /// counts them (strings, arrays and slots): about 70,000 one-line parts of five cells; past it,
    /// parts are read twice from local copies.
    /// </summary>
    internal const long HeldBudget = 32L * 1024 * 1024;

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
    /// <remarks>
    /// Pass 1 reads the parts a window at a time, <see cref="Readers"/> at once (the download and
    /// the parse of one overlap the others', on every core), and folds each window's reads in part
    /// order, so the first kept header, the left-out parts and their problems are what a read in
    /// order gives. A small part (<see cref="SmallPart"/>) is read whole into memory (in place
    /// from a local folder: no copy) and parsed once, its rows kept for pass 2 while the kept rows
    /// of all parts stay under <see cref="HeldBudget"/>; any other part is a local copy, read again
    /// by pass 2 (docs/benchmarks.md, "Gathering many small parts").
    /// </remarks>
    public static async Task<GatheredTable> GatherAsync(GatherSpec spec, IReadOnlyList<TablePartRef> parts, StorageLocation output, bool leaveOutMalformed, string scratch, CancellationToken ct)
    {
        var folder = Path.Combine(scratch, "gather-" + spec.Name);
        Directory.CreateDirectory(folder);

        // Pass 1: check every part, and infer the column types from the parts that are kept.
        IReadOnlyList<string>? columns = spec.Header ? null : spec.Columns;
        ColumnTypes? types = columns is null ? null : new ColumnTypes(columns.Count);
        var kept = new List<KeptPart>();
        var problems = new List<string>();
        var budget = new HeldRows(HeldBudget);
        var window = new PartRead[Math.Min(Window, parts.Count)];
        for (var start = 0; start < parts.Count; start += Window)
        {
            var count = Math.Min(Window, parts.Count - start);
            var first = start;
            await Parallel.ForEachAsync(Enumerable.Range(first, count), new ParallelOptions { MaxDegreeOfParallelism = Readers, CancellationToken = ct }, async (i, token) =>
            {
                window[i - first] = await ReadAsync(spec, parts[i], output, Path.Combine(folder, $"part-{i:D6}"), budget, token).ConfigureAwait(false);
            }).ConfigureAwait(false);

            for (var j = 0; j < count; j++)
            {
                var read = window[j];
                window[j] = null!;
                try
                {
                    var header = read.Header;
                    if (spec.Header && header is not null && columns is not null
                        && !header.SequenceEqual(spec.Columns is not null && spec.Columns.Count == header.Count ? header : columns))
                    {
                        throw new MalformedPartException($"gather '{spec.Name}': {PartName(parts[first + j])} has the header ({string.Join(", ", header)}), but earlier parts have ({string.Join(", ", columns)})");
                    }

                    if (read.Problem is not null)
                    {
                        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(read.Problem);
                    }

                    if (header is not null && columns is null)
                    {
                        // The first kept part's header names the columns, or `columns` renames them.
                        columns = spec.Columns is not null && spec.Columns.Count == header.Count ? spec.Columns : header;
                        types = new ColumnTypes(columns.Count);
                    }

                    if (read.Types is not null)
                    {
                        types!.Merge(read.Types);
                    }

                    kept.Add(new KeptPart(first + j, read.File, read.Rows));
                }
                catch (MalformedPartException e) when (leaveOutMalformed)
                {
                    problems.Add(e.Message);
                }
            }
        }

        // Pass 2: the kept parts in order into the result files, each row with its lineage:
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
            foreach (var k in kept)
            {
                var part = parts[k.Index];
                var source = new SourceFile(part.Inputs ?? []);
                if (k.Rows is { } held)
                {
                    foreach (var row in held)
                    {
                        await writer.WriteAsync(WithLineage(row, part, source), ct).ConfigureAwait(false);
                    }

                    continue;
                }

                using var reader = TableReader.Open(OpenRead(k.File!), PartName(part), spec);
                while (reader.TryRead(out var row))
                {
                    await writer.WriteAsync(WithLineage(row, part, source), ct).ConfigureAwait(false);
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

    private static string?[] WithLineage(string?[] row, TablePartRef part, SourceFile source)
    {
        var withLineage = new string?[row.Length + LineageColumns.Count];
        row.CopyTo(withLineage, 0);
        withLineage[row.Length] = part.TaskId;
        withLineage[row.Length + 1] = source.Of(row);
        withLineage[row.Length + 2] = part.Key;
        return withLineage;
    }

    /// <summary>
    /// Pass 1's read of one part: a small part whole into memory and parsed once (its rows kept
    /// when the budget allows), any other from a local copy. A malformed part is a read with its
    /// problem (and its header, when that was read), for the fold to judge in part order.
    /// </summary>
    private static async Task<PartRead> ReadAsync(GatherSpec spec, TablePartRef part, StorageLocation output, string file, HeldRows budget, CancellationToken ct)
    {
        // In place: no link followed, its size checked (LocalObjectStore.TryReadSmall).
        if (output.Store is LocalObjectStore local && local.TryReadSmall(output.Key(part.Key), SmallPart) is { } inPlace && budget.TryTake(inPlace.Length))
        {
            return budget.Settle(inPlace.Length, Parse(new MemoryStream(inPlace, writable: false), part, spec, hold: true));
        }

        return await ReadCopyAsync().ConfigureAwait(false);

        async Task<PartRead> ReadCopyAsync()
        {
            await output.Store.DownloadAsync(output.Key(part.Key), file, ct).ConfigureAwait(false);
            var stream = OpenRead(file);
            if (stream.Length <= SmallPart && budget.TryTake(stream.Length))
            {
                // A small copy (from a bucket) is read once too, its rows kept.
                return budget.Settle(stream.Length, Parse(stream, part, spec, hold: true));
            }

            return Parse(stream, part, spec, hold: false) with { File = file };
        }
    }

    /// <summary>Reads a part through: its header and column types (null without rows), and its rows when <paramref name="hold"/>.</summary>
    private static PartRead Parse(Stream content, TablePartRef part, GatherSpec spec, bool hold)
    {
        IReadOnlyList<string>? header = null;
        try
        {
            using var reader = TableReader.Open(content, PartName(part), spec);
            header = reader.Header;
            ColumnTypes? types = null;
            List<string?[]>? rows = hold ? [] : null;
            while (reader.TryRead(out var row))
            {
                types ??= new ColumnTypes(row.Length);
                types.Observe(row);
                rows?.Add(row);
            }

            return new PartRead(header, types, rows, null);
        }
        catch (MalformedPartException e)
        {
            return new PartRead(header, null, null, e);
        }
    }

    /// <summary>One part as pass 1 read it: header, types, the rows kept (or the local copy to read again), or its problem.</summary>
    internal sealed record PartRead(IReadOnlyList<string>? Header, ColumnTypes? Types, List<string?[]>? Rows, MalformedPartException? Problem)
    {
        public string? File { get; init; }
    }

    /// <summary>A kept part for pass 2: its rows as pass 1 read them, or its local copy.</summary>
    private sealed record KeptPart(int Index, string? File, List<string?[]>? Rows);

    /// <summary>
    /// What the kept rows of small parts hold, taken as parts are read, at once by several
    /// readers: a part's worst case is taken before it is parsed (<see cref="WorstCase"/>), and
    /// once its rows are held, what they take (<see cref="SizeOf"/>) is kept and the rest given
    /// back (all of it for a malformed part, whose rows are not kept).
    /// </summary>
    internal sealed class HeldRows(long budget)
    {
        private long _left = budget;

        /// <summary>The budget not taken.</summary>
        public long Left => Interlocked.Read(ref _left);

        /// <summary>
        /// The most the rows of a part of <paramref name="bytes"/> can take: a one-character cell
        /// and its line end (2 bytes) is a string (24 bytes with its header and length, rounded
        /// to 8: 32), its slot in the row (8), the row's array (32 with one cell) and its slot in
        /// the part's list (8): 80 bytes, so 40 a byte; more cells a line take less a byte.
        /// </summary>
        public static long WorstCase(long bytes) => (bytes * 40) + 256;

        /// <summary>What held rows take on the heap, as <see cref="WorstCase"/> counts them.</summary>
        public static long SizeOf(List<string?[]> rows)
        {
            long size = 256;
            foreach (var row in rows)
            {
                size += 8 + Align(24 + (8L * row.Length));
                foreach (var cell in row)
                {
                    size += cell is null ? 0 : Align(22 + (2L * cell.Length));
                }
            }

            return size;

            static long Align(long n) => (n + 7) & ~7L;
        }

        public bool TryTake(long bytes)
        {
            var cost = WorstCase(bytes);
            if (Interlocked.Add(ref _left, -cost) >= 0)
            {
                return true;
            }

            Interlocked.Add(ref _left, cost);
            return false;
        }

        /// <summary>Keeps what the part's held rows take of its worst case, and gives the rest back.</summary>
        public PartRead Settle(long bytes, PartRead read)
        {
            var held = read.Rows is { } rows ? Math.Min(SizeOf(rows), WorstCase(bytes)) : 0;
            Interlocked.Add(ref _left, WorstCase(bytes) - held);
            return read;
        }
    }

    private static string PartName(TablePartRef part) => $"task {part.TaskId}: {part.Key}";

    // Unbuffered: the table reader reads in blocks of its own (TableReader.BufferSize).
    private static FileStream OpenRead(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);

    private static FileStream Create(string path) =>
        new(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 65536);
}
