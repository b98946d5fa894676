using System.Runtime.CompilerServices;
using Parquet;
using Parquet.Schema;
using Parquet.Serialization;
using Pipelines.Containers;
using Pipelines.RunStore;

namespace Pipelines.Gather;

/// <summary>One row of provenance/tasks.parquet as read back: the row and the resource columns the file has (null where it has none).</summary>
internal sealed record ProvenanceEntry(ProvenanceRow Row, ResourceUse Resources);

/// <summary>
/// Reads and writes provenance/tasks.parquet one row group at a time, so that memory holds one
/// group (at most <see cref="RowGroupRows"/> rows), whatever the number of tasks.
/// </summary>
internal static class ProvenanceFile
{
    /// <summary>
    /// Rows per row group of tasks.parquet, at most. 2,000, not 10,000: side by side at 20,000
    /// tasks the run's peak (the gather's) was 47 MiB lower and the gather no slower (docs/benchmarks.md, Growth).
    /// </summary>
    public const int RowGroupRows = 2_000;

    /// <summary>Writes the rows to a local file in row groups of <see cref="RowGroupRows"/>.</summary>
    public static Task<long> WriteAsync(IEnumerable<ProvenanceRow> rows, string path, CancellationToken cancellationToken) =>
        WriteAsync(rows.ToAsyncEnumerable(), path, cancellationToken);

    /// <summary>
    /// Writes the rows to a local file as they come, a row group of <see cref="RowGroupRows"/> at a
    /// time (each appended to the file before the next is read), and returns how many were
    /// written. No row gives a file of no row group, with the columns.
    /// </summary>
    public static async Task<long> WriteAsync(IAsyncEnumerable<ProvenanceRow> rows, string path, CancellationToken cancellationToken) =>
        (await WriteAndHoldAsync(rows, path, cancellationToken).ConfigureAwait(false)).Written;

    /// <summary>
    /// Writes the rows as <see cref="WriteAsync(IAsyncEnumerable{ProvenanceRow}, string, CancellationToken)"/>
    /// does, and returns them too when they were one row group at most (null when more): a run
    /// of a few thousand tasks is then read from memory by the gather's later readers (its
    /// tables' parts, the report, the RO-Crate's four passes) rather than decoded from the file
    /// each time. The writer held that group anyway, so memory keeps its bound of one group.
    /// </summary>
    public static async Task<(long Written, IReadOnlyList<ProvenanceRow>? Held)> WriteAndHoldAsync(IAsyncEnumerable<ProvenanceRow> rows, string path, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 65536);
        return await WriteAndHoldAsync(rows, file, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Makes, ahead of a gather, what its first write of tasks.parquet would make: Parquet.Net
    /// builds its serializer for a row type (expression trees compiled to code: nothing an
    /// ahead-of-time compiler sees) at its first use and keeps it for the process, and that, with
    /// the first use of the writer's column encoders, was most of the gather's provenance phase
    /// (200-250 ms for 2,000 rows as for 16; the rows themselves take 20-60 ms). One row like the
    /// engine's, every column given a value, is written through the same call into memory and
    /// dropped: nothing is written anywhere, and a gather that comes before it is done is only as
    /// slow as it was (the serializer's cache is made for concurrent use). `pipelines run` starts it
    /// beside its own start-up, on the core that start-up leaves idle (docs/benchmarks.md, "A
    /// run's fixed cost").
    /// </summary>
    internal static async Task PrepareAsync(CancellationToken cancellationToken)
    {
        using var memory = new MemoryStream();
        await WriteAndHoldAsync(new[] { PreparationRow() }.ToAsyncEnumerable(), memory, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The row <see cref="PrepareAsync"/> writes: a value in every column (ProvenanceFileTests holds it so when a column is added).</summary>
    internal static ProvenanceRow PreparationRow()
    {
        var at = DateTime.SpecifyKind(DateTime.UnixEpoch, DateTimeKind.Unspecified);
        FileRef File() => new() { Key = "k", Size = 1, Sha256 = "s" };
        return new ProvenanceRow
        {
            RunId = "r",
            TaskId = "t",
            TaskIndex = 1,
            Attempt = 1,
            Step = "s",
            Status = "succeeded",
            ExitCode = 0,
            Image = "i",
            ImageDigest = "d",
            Command = ["c"],
            Inputs = [File()],
            Outputs = [File()],
            Log = "l",
            StartedAt = at,
            FinishedAt = at,
            Worker = "w",
            Error = "e",
            CachedFrom = "c",
            RanBecause = "r",
            CpuSeconds = 0,
            PeakMemoryBytes = 0,
            ReadBytes = 0,
            WrittenBytes = 0,
            WallSeconds = 0,
            ImageLoadSeconds = 0,
            ImageLoad = "l",
            TraceId = "t",
            SpanId = "s",
        };
    }

    private static async Task<(long Written, IReadOnlyList<ProvenanceRow>? Held)> WriteAndHoldAsync(IAsyncEnumerable<ProvenanceRow> rows, Stream file, CancellationToken cancellationToken)
    {
        var group = new List<ProvenanceRow>();
        List<ProvenanceRow>? first = null;
        var groups = 0;
        long written = 0;
        await foreach (var row in rows.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            group.Add(row);
            if (group.Count == RowGroupRows)
            {
                await FlushAsync().ConfigureAwait(false);
            }
        }

        if (group.Count > 0 || groups == 0)
        {
            await FlushAsync().ConfigureAwait(false);
        }

        return (written, groups == 1 ? first : null);

        async Task FlushAsync()
        {
            // Append reads the footer back and writes the group after the last: the file is whole after each group.
            await ParquetSerializer.SerializeAsync(group, file, new ParquetOptions { RowGroupSize = RowGroupRows, Append = groups > 0 }, cancellationToken: cancellationToken).ConfigureAwait(false);
            groups++;
            written += group.Count;

            // The first group is kept while it may be the only one; a second lets it go.
            first = groups == 1 && AsReadBack(group) ? group : null;
            group = groups == 1 ? [] : group;
            group.Clear();
        }
    }

    /// <summary>
    /// Makes written rows what reading them back gives, for the held rows to stand for the file:
    /// a time comes back to the tick but of no kind (the engine's rows hold UTC), so it is given
    /// none. False (the rows are not held) for a local time, which the file may have converted.
    /// The rows are the writer's own: the store's stream makes them for this write.
    /// </summary>
    private static bool AsReadBack(List<ProvenanceRow> rows)
    {
        if (rows.Exists(r => r.StartedAt.Kind == DateTimeKind.Local || r.FinishedAt.Kind == DateTimeKind.Local))
        {
            return false;
        }

        foreach (var r in rows)
        {
            r.StartedAt = DateTime.SpecifyKind(r.StartedAt, DateTimeKind.Unspecified);
            r.FinishedAt = DateTime.SpecifyKind(r.FinishedAt, DateTimeKind.Unspecified);
        }

        return true;
    }

    /// <summary>The rows of a local tasks.parquet, in file order, a row group in memory at a time (the gather's reads of what it wrote).</summary>
    public static async IAsyncEnumerable<ProvenanceRow> ReadRowsAsync(string path, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 65536);
        await foreach (var entry in ReadAsync(file, resources: false, cancellationToken).ConfigureAwait(false))
        {
            yield return entry.Row;
        }
    }

    /// <summary>Every row of a tasks.parquet stream (seekable), in file order, with its resource columns.</summary>
    public static IAsyncEnumerable<ProvenanceEntry> ReadAsync(Stream parquet, CancellationToken cancellationToken) => ReadAsync(parquet, resources: true, cancellationToken);

    /// <summary>The rows; their resource columns read apart (as any number type a writer chose) only when asked for.</summary>
    private static async IAsyncEnumerable<ProvenanceEntry> ReadAsync(Stream parquet, bool resources, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        int groups;
        DataField?[] resourceFields;
        await using (var reader = await ParquetReader.CreateAsync(parquet, leaveStreamOpen: true, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            groups = reader.RowGroupCount;
            var fields = reader.Schema.GetDataFields();
            resourceFields = ResourceUse.Columns.Select(c => resources ? fields.FirstOrDefault(f => f.Name == c && f.MaxRepetitionLevel == 0) : null).ToArray();
        }

        for (var g = 0; g < groups; g++)
        {
            parquet.Position = 0;
            var rows = (await ParquetSerializer.DeserializeAsync<ProvenanceRow>(parquet, null, g, cancellationToken).ConfigureAwait(false)).Data;
            var read = await ReadResourcesAsync(parquet, g, resourceFields, rows.Count, cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < rows.Count; i++)
            {
                yield return new ProvenanceEntry(rows[i], read?[i] ?? ResourceUse.None);
            }
        }
    }

    private static async Task<ResourceUse[]?> ReadResourcesAsync(Stream parquet, int group, DataField?[] fields, int count, CancellationToken ct)
    {
        if (fields.All(f => f is null))
        {
            return null;
        }

        parquet.Position = 0;
        var columns = new double?[fields.Length][];
        await using (var reader = await ParquetReader.CreateAsync(parquet, leaveStreamOpen: true, cancellationToken: ct).ConfigureAwait(false))
        {
            using var rg = reader.OpenRowGroupReader(group);
            for (var c = 0; c < fields.Length; c++)
            {
                columns[c] = fields[c] is { } f ? await ReadNumbersAsync(rg, f, (int)rg.RowCount, ct).ConfigureAwait(false) : new double?[count];
            }
        }

        return Enumerable.Range(0, count).Select(i => new ResourceUse(columns[0][i], columns[1][i], columns[2][i], columns[3][i], columns[4][i])).ToArray();
    }

    /// <summary>A numeric column as doubles, whichever number type the writer chose; other types read as nulls.</summary>
    private static async Task<double?[]> ReadNumbersAsync(ParquetRowGroupReader rg, DataField field, int count, CancellationToken ct)
    {
        var result = new double?[count];
        var type = Nullable.GetUnderlyingType(field.ClrType) ?? field.ClrType;
        if (type == typeof(double))
        {
            await rg.ReadAsync<double>(field, result.AsMemory(), null, ct).ConfigureAwait(false);
        }
        else if (type == typeof(long))
        {
            var v = new long?[count];
            await rg.ReadAsync<long>(field, v.AsMemory(), null, ct).ConfigureAwait(false);
            Copy(v, x => x);
        }
        else if (type == typeof(int))
        {
            var v = new int?[count];
            await rg.ReadAsync<int>(field, v.AsMemory(), null, ct).ConfigureAwait(false);
            Copy(v, x => x);
        }
        else if (type == typeof(float))
        {
            var v = new float?[count];
            await rg.ReadAsync<float>(field, v.AsMemory(), null, ct).ConfigureAwait(false);
            Copy(v, x => x);
        }
        else if (type == typeof(ulong))
        {
            var v = new ulong?[count];
            await rg.ReadAsync<ulong>(field, v.AsMemory(), null, ct).ConfigureAwait(false);
            Copy(v, x => x);
        }

        return result;

        void Copy<T>(T?[] values, Func<T, double> convert)
            where T : struct
        {
            for (var i = 0; i < count; i++)
            {
                result[i] = values[i] is { } x ? convert(x) : null;
            }
        }
    }
}
