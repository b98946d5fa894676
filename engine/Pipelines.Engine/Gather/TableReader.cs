using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using CsvHelper;
using CsvHelper.Configuration;
using Pipelines.Model;

namespace Pipelines.Gather;

/// <summary>
/// One task's output file read as a table from a stream, one row at a time: TSV (no quoting) or
/// CSV (RFC 4180), strict UTF-8, empty cells as null. Whatever breaks the table throws a
/// <see cref="MalformedPartException"/> naming the part and, where there is one, the line.
/// </summary>
internal sealed class TableReader : IDisposable
{
    // Cells keep their bytes: a decoder that replaced invalid bytes with U+FFFD would change them.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly GatherSpec _spec;
    private readonly string _partName;
    private readonly StreamReader _text;
    private readonly CsvParser _parser;
    private readonly int _width;

    private TableReader(Stream content, string partName, GatherSpec spec)
    {
        _spec = spec;
        _partName = partName;
        var bufferSize = BufferSize(content);
        var config = new CsvConfiguration(CultureInfo.InvariantCulture)
        {
            // The parser's own buffers at the part's size too (they grow for a longer row): at their
            // defaults (4,096 and 1,024 characters) they were 10 KiB a part, each read twice.
            BufferSize = bufferSize,
            ProcessFieldBufferSize = Math.Min(bufferSize, 1024),
            Delimiter = spec.Format == TableFormat.Tsv ? "\t" : ",",
            HasHeaderRecord = false,
            Mode = spec.Format == TableFormat.Tsv ? CsvMode.NoEscape : CsvMode.RFC4180,
            IgnoreBlankLines = true,
            BadDataFound = args => throw new MalformedPartException($"{Prefix}, line {args.Context.Parser?.RawRow}: malformed field {args.Field}"),
        };
        _text = new StreamReader(new Utf8CheckingStream(content, Prefix), StrictUtf8, detectEncodingFromByteOrderMarks: true, bufferSize: bufferSize);
        _parser = new CsvParser(_text, config);
        if (spec.Header && Next() is { } header)
        {
            Header = header.Select(h => h.Trim()).ToList();
        }

        _width = spec.Header ? Header?.Count ?? 0 : spec.Columns!.Count;
    }

    /// <summary>
    /// The reads' size: 64 KiB, or the part's own size when it is smaller. A one-file task's part
    /// is a line or two, and a run gathers thousands of them, each read twice: at 64 KiB the
    /// reader's character buffer and the UTF-8 check's were 128 KiB each, on the large object
    /// heap, four of them a part (docs/benchmarks.md, "Where the wall time of a run goes").
    /// </summary>
    private static int BufferSize(Stream content) =>
        content.CanSeek ? (int)Math.Clamp(content.Length - content.Position + 1, 128, 65536) : 65536;

    /// <summary>The part's header row (trimmed) when the gather says parts have one; null for an empty part.</summary>
    public IReadOnlyList<string>? Header { get; }

    /// <summary>How to name the part in messages: the gather, the task and the file.</summary>
    private string Prefix => $"gather '{_spec.Name}': {_partName}";

    /// <summary>Opens a part and reads its header. The reader owns the stream.</summary>
    public static TableReader Open(Stream content, string partName, GatherSpec spec)
    {
        try
        {
            return new TableReader(content, partName, spec);
        }
        catch
        {
            content.Dispose();
            throw;
        }
    }

    /// <summary>Reads the next row (a fresh array each time), or returns false at the end of the part.</summary>
    public bool TryRead([NotNullWhen(true)] out string?[]? row)
    {
        var record = Next();
        if (record is null)
        {
            row = null;
            return false;
        }

        if (record.Length != _width)
        {
            var names = _spec.Header ? Header! : _spec.Columns!;
            throw new MalformedPartException($"{Prefix}, line {_parser.RawRow}: {record.Length} cells, expected {_width} ({string.Join(", ", names)})");
        }

        row = new string?[record.Length];
        for (var i = 0; i < record.Length; i++)
        {
            row[i] = record[i].Length == 0 ? null : record[i];
        }

        return true;
    }

    private string[]? Next()
    {
        try
        {
            return _parser.Read() ? _parser.Record ?? [] : null;
        }
        catch (CsvHelperException e) when (e.InnerException is MalformedPartException inner)
        {
            throw inner;
        }
        catch (CsvHelperException e)
        {
            throw new MalformedPartException($"{Prefix}, line {_parser.RawRow}: not valid {_spec.Format.ToString().ToUpperInvariant()}: {e.Message.Split('\n')[0]}");
        }
        catch (DecoderFallbackException)
        {
            // The checking stream reports invalid bytes first, with their line; this is the backstop.
            throw new MalformedPartException($"{Prefix}: not valid UTF-8 (cells must be UTF-8 text)");
        }
    }

    public void Dispose()
    {
        _parser.Dispose();
        _text.Dispose();
    }
}
