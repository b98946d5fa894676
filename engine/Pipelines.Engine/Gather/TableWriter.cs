using System.Globalization;
using System.Text;
using CsvHelper;
using Parquet;
using Parquet.Schema;

namespace Pipelines.Gather;

/// <summary>Writes a merged table as Parquet (typed columns) and CSV (cells as they came).</summary>
public static class TableWriter
{
    /// <summary>A column is INT64 when every cell is a whole number, DOUBLE when every cell is a number, else text.</summary>
    public enum ColumnType { Int64, Double, Text }

    public static ColumnType Infer(IReadOnlyList<string?[]> rows, int column)
    {
        var type = ColumnType.Int64;
        var any = false;
        foreach (var row in rows)
        {
            var cell = row[column];
            if (cell is null)
            {
                continue;
            }

            any = true;
            if (type == ColumnType.Int64 && !long.TryParse(cell, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
            {
                type = ColumnType.Double;
            }

            if (type == ColumnType.Double && !double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
            {
                return ColumnType.Text;
            }
        }

        return any ? type : ColumnType.Text;
    }

    public static async Task<byte[]> ToParquetAsync(IReadOnlyList<string> columns, IReadOnlyList<string?[]> rows, CancellationToken cancellationToken)
    {
        var types = Enumerable.Range(0, columns.Count).Select(i => Infer(rows, i)).ToArray();
        var fields = columns.Select((c, i) => types[i] switch
        {
            ColumnType.Int64 => (DataField)new DataField<long?>(c),
            ColumnType.Double => new DataField<double?>(c),
            _ => new DataField<string>(c, true),
        }).ToArray();
        var schema = new ParquetSchema(fields);
        using var stream = new MemoryStream();
        await using (var writer = await ParquetWriter.CreateAsync(schema, stream, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            using var group = writer.CreateRowGroup();
            for (var i = 0; i < columns.Count; i++)
            {
                switch (types[i])
                {
                    case ColumnType.Int64:
                        var longs = rows.Select(r => r[i] is null ? (long?)null : long.Parse(r[i]!, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture)).ToArray();
                        await group.WriteAsync<long>(fields[i], longs.AsMemory(), cancellationToken: cancellationToken).ConfigureAwait(false);
                        break;
                    case ColumnType.Double:
                        var doubles = rows.Select(r => r[i] is null ? (double?)null : double.Parse(r[i]!, NumberStyles.Float, CultureInfo.InvariantCulture)).ToArray();
                        await group.WriteAsync<double>(fields[i], doubles.AsMemory(), cancellationToken: cancellationToken).ConfigureAwait(false);
                        break;
                    default:
                        await group.WriteAsync(fields[i], rows.Select(r => r[i]!).ToArray()).ConfigureAwait(false);
                        break;
                }
            }
        }

        return stream.ToArray();
    }

    public static byte[] ToCsv(IReadOnlyList<string> columns, IReadOnlyList<string?[]> rows)
    {
        using var stream = new MemoryStream();
        using (var writer = new StreamWriter(stream, new UTF8Encoding(false)))
        using (var csv = new CsvWriter(writer, new CsvHelper.Configuration.CsvConfiguration(CultureInfo.InvariantCulture) { NewLine = "\n" }))
        {
            foreach (var c in columns)
            {
                csv.WriteField(c);
            }

            csv.NextRecord();
            foreach (var row in rows)
            {
                foreach (var cell in row)
                {
                    csv.WriteField(cell ?? "");
                }

                csv.NextRecord();
            }
        }

        return stream.ToArray();
    }
}
