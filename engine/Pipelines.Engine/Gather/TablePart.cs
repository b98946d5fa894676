using System.Globalization;
using System.Text;
using CsvHelper;
using CsvHelper.Configuration;
using Pipelines.Model;

namespace Pipelines.Gather;

/// <summary>One task's output file read as a table: its header (when it has one) and its rows.</summary>
public sealed record TablePart(IReadOnlyList<string>? Header, IReadOnlyList<string?[]> Rows)
{
    /// <summary>Parses TSV (no quoting) or CSV (RFC 4180). Empty cells become null.</summary>
    public static TablePart Read(byte[] content, string partName, GatherSpec spec)
    {
        var config = new CsvConfiguration(CultureInfo.InvariantCulture)
        {
            Delimiter = spec.Format == TableFormat.Tsv ? "\t" : ",",
            HasHeaderRecord = false,
            Mode = spec.Format == TableFormat.Tsv ? CsvMode.NoEscape : CsvMode.RFC4180,
            IgnoreBlankLines = true,
            BadDataFound = args => throw new PipelinesException($"gather '{spec.Name}': {partName}, line {args.Context.Parser?.RawRow}: malformed field {args.Field}", retryHelps: false),
        };
        using var reader = new StreamReader(new MemoryStream(content), Encoding.UTF8);
        using var parser = new CsvParser(reader, config);
        IReadOnlyList<string>? header = null;
        var rows = new List<string?[]>();
        try
        {
            while (parser.Read())
            {
                var record = parser.Record ?? [];
                if (spec.Header && header is null)
                {
                    header = record.Select(h => h.Trim()).ToList();
                    continue;
                }

                var width = spec.Header ? header!.Count : spec.Columns!.Count;
                if (record.Length != width)
                {
                    throw new PipelinesException($"gather '{spec.Name}': {partName}, line {parser.RawRow}: {record.Length} cells, expected {width} ({string.Join(", ", spec.Header ? header! : spec.Columns!)})", retryHelps: false);
                }

                rows.Add(record.Select(c => c.Length == 0 ? null : c).ToArray());
            }
        }
        catch (CsvHelperException e)
        {
            throw new PipelinesException($"gather '{spec.Name}': {partName}: not valid {spec.Format.ToString().ToUpperInvariant()}: {e.Message.Split('\n')[0]}", retryHelps: false);
        }

        return new TablePart(header, rows);
    }
}
