using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;
using Parquet;
using Parquet.Serialization;

namespace Pipelines.Lineage;

/// <summary>
/// Finds one row of a gathered table in a local copy, by number or by a column's value, reading
/// one Parquet row group (or one CSV record) at a time, so memory does not grow with the table.
/// </summary>
internal static class ResultTable
{
    private const int MatchesNamed = 10;

    public static async Task<(long Number, long Rows, IReadOnlyDictionary<string, string?> Cells)> FindParquetAsync(string path, string key, LineageRequest request, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 65536);
        long total = 0;
        var sizes = new List<long>();
        List<string> columns;
        await using (var reader = await ParquetReader.CreateAsync(file, leaveStreamOpen: true, cancellationToken: ct).ConfigureAwait(false))
        {
            columns = reader.Schema.Fields.Select(f => f.Name).ToList();
            for (var g = 0; g < reader.RowGroupCount; g++)
            {
                using var rg = reader.OpenRowGroupReader(g);
                sizes.Add(rg.RowCount);
                total += rg.RowCount;
            }
        }

        var column = KeyColumn(columns, key, request);
        var matches = new List<(long Number, IReadOnlyDictionary<string, string?> Cells)>();
        long first = 0;
        for (var g = 0; g < sizes.Count; g++)
        {
            if (request.Row is { } n && (n <= first || n > first + sizes[g]))
            {
                first += sizes[g];
                continue;
            }

            file.Position = 0;
            var data = (await ParquetSerializer.DeserializeUntypedAsync(file, null, g, ct).ConfigureAwait(false)).Data;
            for (var i = 0; i < data.Count; i++)
            {
                var number = first + i + 1;
                if (request.Row is { } row)
                {
                    if (row == number)
                    {
                        return (number, total, Cells(columns, (IDictionary<string, object?>)data[i]));
                    }

                    continue;
                }

                var cells = (IDictionary<string, object?>)data[i];
                if (Text(cells.TryGetValue(column!, out var v) ? v : null) == request.Key)
                {
                    matches.Add((number, Cells(columns, cells)));
                }
            }

            first += sizes[g];
        }

        return Only(matches, total, key, column, request);
    }

    public static Task<(long Number, long Rows, IReadOnlyDictionary<string, string?> Cells)> FindCsvAsync(string path, string key, LineageRequest request, CancellationToken ct)
    {
        using var text = new StreamReader(path, new System.Text.UTF8Encoding(false, true));
        using var csv = new CsvReader(text, new CsvConfiguration(CultureInfo.InvariantCulture));
        if (!csv.Read() || !csv.ReadHeader())
        {
            throw LineageService.Mistake($"{key} is empty: it has no header row");
        }

        var columns = csv.HeaderRecord!.ToList();
        var column = KeyColumn(columns, key, request);
        var keyIndex = column is null ? -1 : columns.IndexOf(column);
        var matches = new List<(long Number, IReadOnlyDictionary<string, string?> Cells)>();
        IReadOnlyDictionary<string, string?>? found = null;
        long number = 0;
        while (csv.Read())
        {
            ct.ThrowIfCancellationRequested();
            number++;
            if (request.Row == number)
            {
                found = CsvCells(columns, csv);
            }
            else if (keyIndex >= 0 && csv.GetField(keyIndex) == request.Key)
            {
                matches.Add((number, CsvCells(columns, csv)));
            }
        }

        if (request.Row is { } row)
        {
            return Task.FromResult(found is null ? throw NoRow(key, row, number) : (row, number, found));
        }

        return Task.FromResult(Only(matches, number, key, column, request));
    }

    private static string? KeyColumn(IReadOnlyList<string> columns, string key, LineageRequest request)
    {
        if (request.Key is null)
        {
            return null;
        }

        var column = request.Column ?? columns.FirstOrDefault();
        if (column is null || !columns.Contains(column))
        {
            throw LineageService.Mistake($"{key} has no column '{column}': its columns are {string.Join(", ", columns)}");
        }

        return column;
    }

    private static (long, long, IReadOnlyDictionary<string, string?>) Only(List<(long Number, IReadOnlyDictionary<string, string?> Cells)> matches, long total, string key, string? column, LineageRequest request)
    {
        if (request.Row is { } row)
        {
            throw NoRow(key, row, total);
        }

        return matches.Count switch
        {
            0 => throw LineageService.Mistake($"no row of {key} has {column} = '{request.Key}' ({total} rows)"),
            1 => (matches[0].Number, total, matches[0].Cells),
            _ => throw LineageService.Mistake($"{matches.Count} rows of {key} have {column} = '{request.Key}' (rows {string.Join(", ", matches.Take(MatchesNamed).Select(m => m.Number))}{(matches.Count > MatchesNamed ? ", ..." : "")}): name one with --row"),
        };
    }

    private static PipelinesException NoRow(string key, long row, long total) =>
        LineageService.Mistake($"{key} has {total} rows; there is no row {row} (rows are numbered from 1)");

    private static Dictionary<string, string?> Cells(IReadOnlyList<string> columns, IDictionary<string, object?> row) =>
        columns.ToDictionary(c => c, c => Text(row.TryGetValue(c, out var v) ? v : null), StringComparer.Ordinal);

    private static Dictionary<string, string?> CsvCells(IReadOnlyList<string> columns, CsvReader csv) =>
        columns.Select((c, i) => (c, v: csv.GetField(i))).ToDictionary(x => x.c, x => x.v is "" ? null : x.v, StringComparer.Ordinal);

    private static string? Text(object? value) => value switch
    {
        null => null,
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };
}
