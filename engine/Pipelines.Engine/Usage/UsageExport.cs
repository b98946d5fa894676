using System.Globalization;
using System.Text;
using System.Text.Json;
using Parquet;
using Parquet.Schema;

namespace Pipelines.Usage;

/// <summary>The formats usage records are exported in (docs/tenants.md, Usage and cost).</summary>
public enum UsageFormat { Csv, JsonLines, Parquet }

/// <summary>
/// Writes usage records as CSV, JSON lines or Parquet, streamed: the one list of the export's
/// columns (<see cref="Columns"/>) that every format reads, so a column is named, typed and
/// valued once. Parquet is written in row groups of <see cref="RowGroupRows"/> records, each sent
/// on before the next is read: memory holds one row group, whatever the number of records.
/// </summary>
public static class UsageExport
{
    /// <summary>Records per Parquet row group, at most (a record's cells are about 300 bytes: a group is a few MB).</summary>
    internal const int RowGroupRows = 16_384;

    /// <summary>A column's type: text, whole number, number, true/false, or a time (UTC).</summary>
    internal enum ColumnType { Text, Int64, Double, Boolean, Timestamp }

    /// <summary>One column of the export: its name, its type, and its value in a record (null: empty).</summary>
    internal sealed record Column(string Name, ColumnType Type, Func<UsageRecord, object?> Value);

    /// <summary>The export's columns, in order; CSV's header, JSON lines' names and Parquet's schema.</summary>
    internal static IReadOnlyList<Column> Columns { get; } =
    [
        new("id", ColumnType.Text, r => r.Id),
        new("tenant", ColumnType.Text, r => r.Tenant.Value),
        new("kind", ColumnType.Text, r => r.Kind),
        new("run_id", ColumnType.Text, r => r.RunId),
        new("task_index", ColumnType.Int64, r => (long?)r.TaskIndex),
        new("delivery", ColumnType.Int64, r => (long?)r.Delivery),
        new("function", ColumnType.Text, r => r.Function),
        new("version", ColumnType.Int64, r => (long?)r.Version),
        new("route", ColumnType.Text, r => r.Route),
        new("worker", ColumnType.Text, r => r.Worker),
        new("started_at", ColumnType.Timestamp, r => r.StartedAt),
        new("ended_at", ColumnType.Timestamp, r => r.EndedAt),
        new("wall_seconds", ColumnType.Double, r => r.WallSeconds),
        new("cpu_seconds", ColumnType.Double, r => r.CpuSeconds),
        new("peak_memory_bytes", ColumnType.Int64, r => r.PeakMemoryBytes),
        new("reserved_memory_bytes", ColumnType.Int64, r => r.ReservedMemoryBytes),
        new("gb_seconds", ColumnType.Double, r => r.GbSeconds),
        new("bytes_in", ColumnType.Int64, r => r.BytesIn),
        new("bytes_out", ColumnType.Int64, r => r.BytesOut),
        new("harvested", ColumnType.Boolean, r => r.Harvested),
        new("outcome", ColumnType.Text, r => r.Outcome),
        new("reason", ColumnType.Text, r => r.Reason),
    ];

    /// <summary>The format a request's <c>format</c> names (csv, json, parquet); null when it names none of them.</summary>
    public static UsageFormat? Parse(string format) => format switch
    {
        "csv" => UsageFormat.Csv,
        "json" => UsageFormat.JsonLines,
        "parquet" => UsageFormat.Parquet,
        _ => null,
    };

    /// <summary>The HTTP content type of a format.</summary>
    public static string ContentType(UsageFormat format) => format switch
    {
        UsageFormat.Csv => "text/csv; charset=utf-8",
        UsageFormat.JsonLines => "application/x-ndjson",
        _ => "application/vnd.apache.parquet",
    };

    /// <summary>Writes <paramref name="records"/> to <paramref name="output"/> (left open) as it reads them; the number written.</summary>
    public static Task<long> WriteAsync(IAsyncEnumerable<UsageRecord> records, Stream output, UsageFormat format, CancellationToken cancellationToken) =>
        format == UsageFormat.Parquet ? WriteParquetAsync(records, output, cancellationToken) : WriteTextAsync(records, output, format, cancellationToken);

    private static async Task<long> WriteTextAsync(IAsyncEnumerable<UsageRecord> records, Stream output, UsageFormat format, CancellationToken ct)
    {
        await using var writer = new StreamWriter(output, new UTF8Encoding(false), bufferSize: 16384, leaveOpen: true);
        if (format == UsageFormat.Csv)
        {
            await writer.WriteLineAsync(string.Join(',', Columns.Select(c => c.Name))).ConfigureAwait(false);
        }

        var json = new MemoryStream();
        long count = 0;
        await foreach (var r in records.WithCancellation(ct).ConfigureAwait(false))
        {
            await writer.WriteLineAsync(format == UsageFormat.Csv ? CsvLine(r) : JsonLine(r, json)).ConfigureAwait(false);
            count++;
        }

        await writer.FlushAsync(ct).ConfigureAwait(false);
        return count;
    }

    private static string CsvLine(UsageRecord r) => string.Join(',', Columns.Select(c => c.Value(r) switch
    {
        null => "",
        string s => Csv(s),
        var v => Text(c.Type, v),
    }));

    // Nulls are left out, as an absent cell; every other value typed as its column.
    private static string JsonLine(UsageRecord r, MemoryStream buffer)
    {
        buffer.SetLength(0);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            foreach (var c in Columns)
            {
                switch (c.Value(r))
                {
                    case null:
                        break;
                    case string s:
                        json.WriteString(c.Name, s);
                        break;
                    case bool b:
                        json.WriteBoolean(c.Name, b);
                        break;
                    case DateTimeOffset t:
                        json.WriteString(c.Name, Text(ColumnType.Timestamp, t));
                        break;
                    case long l:
                        json.WriteNumber(c.Name, l);
                        break;
                    case double d:
                        json.WriteNumber(c.Name, d);
                        break;
                    case var other:
                        throw new InvalidOperationException($"usage column {c.Name}: no JSON for {other.GetType().Name}");
                }
            }

            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>A value as CSV writes it: numbers invariant (doubles round-trip), booleans true/false, times ISO 8601 in UTC.</summary>
    private static string Text(ColumnType type, object value) => (type, value) switch
    {
        (ColumnType.Timestamp, DateTimeOffset t) => t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
        (ColumnType.Boolean, bool b) => b ? "true" : "false",
        (ColumnType.Double, double d) => d.ToString("R", CultureInfo.InvariantCulture),
        (_, IFormattable f) => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    // RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled.
    private static string Csv(string value) =>
        value.AsSpan().IndexOfAny(",\"\r\n") < 0 ? value : "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>The Parquet field of a column: text nullable, numbers and booleans nullable, times as UTC timestamps in microseconds.</summary>
    internal static DataField Field(Column c) => c.Type switch
    {
        ColumnType.Int64 => new DataField<long?>(c.Name),
        ColumnType.Double => new DataField<double?>(c.Name),
        ColumnType.Boolean => new DataField<bool?>(c.Name),
        ColumnType.Timestamp => new DateTimeDataField(c.Name, DateTimeFormat.Timestamp, isAdjustedToUTC: true, unit: DateTimeTimeUnit.Micros, isNullable: false),
        _ => new DataField<string>(c.Name, true),
    };

    private static async Task<long> WriteParquetAsync(IAsyncEnumerable<UsageRecord> records, Stream output, CancellationToken ct)
    {
        // Parquet.Net writes synchronously at times and asks the stream's position; a response body allows neither.
        // It writes into this buffer instead, which is sent on (asynchronously) after each row group and after the footer.
        var buffer = new PositionedBuffer();
        var fields = Columns.Select(Field).ToArray();
        var group = new List<UsageRecord>(RowGroupRows);
        long count = 0;
        await using (var writer = await ParquetWriter.CreateAsync(new ParquetSchema(fields), buffer, cancellationToken: ct).ConfigureAwait(false))
        {
            await foreach (var r in records.WithCancellation(ct).ConfigureAwait(false))
            {
                group.Add(r);
                count++;
                if (group.Count == RowGroupRows)
                {
                    await WriteGroupAsync(writer, fields, group, ct).ConfigureAwait(false);
                    await buffer.DrainAsync(output, ct).ConfigureAwait(false);
                }
            }

            // An export without records still has one (empty) row group: readers see its schema.
            if (group.Count > 0 || count == 0)
            {
                await WriteGroupAsync(writer, fields, group, ct).ConfigureAwait(false);
            }
        }

        await buffer.DrainAsync(output, ct).ConfigureAwait(false);
        await output.FlushAsync(ct).ConfigureAwait(false);
        return count;
    }

    private static async Task WriteGroupAsync(ParquetWriter writer, DataField[] fields, List<UsageRecord> group, CancellationToken ct)
    {
        using (var rg = writer.CreateRowGroup())
        {
            for (var i = 0; i < fields.Length; i++)
            {
                var column = Columns[i];
                switch (column.Type)
                {
                    case ColumnType.Int64:
                        await rg.WriteAsync<long>(fields[i], group.Select(r => (long?)column.Value(r)).ToArray(), cancellationToken: ct).ConfigureAwait(false);
                        break;
                    case ColumnType.Double:
                        await rg.WriteAsync<double>(fields[i], group.Select(r => (double?)column.Value(r)).ToArray(), cancellationToken: ct).ConfigureAwait(false);
                        break;
                    case ColumnType.Boolean:
                        await rg.WriteAsync<bool>(fields[i], group.Select(r => (bool?)column.Value(r)).ToArray(), cancellationToken: ct).ConfigureAwait(false);
                        break;
                    case ColumnType.Timestamp:
                        await rg.WriteAsync<DateTime>(fields[i], group.Select(r => ((DateTimeOffset)column.Value(r)!).UtcDateTime).ToArray(), cancellationToken: ct).ConfigureAwait(false);
                        break;
                    default:
                        await rg.WriteAsync(fields[i], group.Select(r => (string?)column.Value(r)).ToArray()!).ConfigureAwait(false);
                        break;
                }
            }
        }

        group.Clear();
    }

    /// <summary>
    /// A write-only buffer that keeps counting its position across drains: Parquet.Net's offsets
    /// are positions in the whole file, while the bytes before them are already sent.
    /// </summary>
    private sealed class PositionedBuffer : MemoryStream
    {
        private long _drained;

        public override long Position
        {
            get => _drained + base.Position;
            set => base.Position = value - _drained;
        }

        /// <summary>Sends what is buffered to <paramref name="to"/> and empties the buffer (the position goes on).</summary>
        public async Task DrainAsync(Stream to, CancellationToken ct)
        {
            await to.WriteAsync(GetBuffer().AsMemory(0, (int)Length), ct).ConfigureAwait(false);
            _drained += Length;
            SetLength(0);
        }
    }
}
