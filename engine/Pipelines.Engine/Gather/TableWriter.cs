using System.Globalization;
using System.Text;
using CsvHelper;
using CsvHelper.Configuration;
using Parquet;
using Parquet.Schema;

namespace Pipelines.Gather;

/// <summary>
/// Writes a merged table row by row as Parquet (typed columns, in row groups of bounded size)
/// and CSV (cells as they came). Memory holds one row group at most, whatever the table's size.
/// </summary>
internal sealed class TableWriter : IAsyncDisposable
{
    /// <summary>Rows per Parquet row group, at most.</summary>
    public const int RowGroupRows = 65_536;

    // A row group is also cut when its text cells reach this many characters, so a table of
    // wide rows keeps the same bound on memory as one of narrow rows.
    private const long RowGroupChars = 16 * 1024 * 1024;

    private readonly DataField[] _fields;
    private readonly ColumnType[] _types;
    private readonly ParquetWriter? _parquet;
    private readonly StreamWriter? _csvText;
    private readonly CsvWriter? _csv;
    // Column buffers are sized to the rows held, doubling from FirstRows up to the row group: a
    // table of a few thousand rows (a run's tasks) does not allocate 65,536 cells a column.
    private const int FirstRows = 1024;

    private readonly long?[][] _longs;
    private readonly double?[][] _doubles;
    private readonly string[][] _strings;
    private int _capacity = FirstRows;
    private int _buffered;
    private long _bufferedChars;

    private TableWriter(IReadOnlyList<string> columns, ColumnType[] types, DataField[] fields, ParquetWriter? parquet, Stream? csv)
    {
        _types = types;
        _fields = fields;
        _parquet = parquet;
        _longs = types.Select(t => t == ColumnType.Int64 ? new long?[FirstRows] : []).ToArray();
        _doubles = types.Select(t => t == ColumnType.Double ? new double?[FirstRows] : []).ToArray();
        _strings = types.Select(t => t == ColumnType.Text ? new string[FirstRows] : []).ToArray();
        if (csv is not null)
        {
            _csvText = new StreamWriter(csv, new UTF8Encoding(false), bufferSize: 65536, leaveOpen: true);
            _csv = new CsvWriter(_csvText, new CsvConfiguration(CultureInfo.InvariantCulture) { NewLine = "\n" });
            foreach (var c in columns)
            {
                _csv.WriteField(c);
            }

            _csv.NextRecord();
        }
    }

    /// <summary>Rows written so far.</summary>
    public long Rows { get; private set; }

    /// <summary>
    /// A writer of the given columns and types to either output or both (null: not written). The
    /// streams stay open: the caller owns them.
    /// </summary>
    public static async Task<TableWriter> CreateAsync(IReadOnlyList<string> columns, IReadOnlyList<ColumnType> types, Stream? parquet, Stream? csv, CancellationToken cancellationToken)
    {
        var typeArray = types.ToArray();

        // Parquet.Net writes a column by the field object its schema holds: the same instances are kept.
        var fields = Fields(columns, typeArray);
        var writer = parquet is null ? null : await ParquetWriter.CreateAsync(new ParquetSchema(fields), parquet, cancellationToken: cancellationToken).ConfigureAwait(false);
        return new TableWriter(columns, typeArray, fields, writer, csv);
    }

    /// <summary>Adds a row; its cells must suit the column types given at creation.</summary>
    public async ValueTask WriteAsync(string?[] row, CancellationToken cancellationToken)
    {
        if (_csv is not null)
        {
            foreach (var cell in row)
            {
                _csv.WriteField(cell ?? "");
            }

            _csv.NextRecord();
        }

        Rows++;
        if (_parquet is null)
        {
            return;
        }

        if (_buffered == _capacity)
        {
            Grow();
        }

        for (var i = 0; i < row.Length; i++)
        {
            var cell = row[i];
            switch (_types[i])
            {
                case ColumnType.Int64:
                    _longs[i][_buffered] = cell is null ? null : ColumnTypes.ParseInt64(cell);
                    break;
                case ColumnType.Double:
                    _doubles[i][_buffered] = cell is null ? null : ColumnTypes.ParseDouble(cell);
                    break;
                default:
                    // Parquet.Net's string overload takes nulls for a nullable field.
                    _strings[i][_buffered] = cell!;
                    _bufferedChars += cell?.Length ?? 0;
                    break;
            }
        }

        _buffered++;
        if (_buffered == RowGroupRows || _bufferedChars >= RowGroupChars)
        {
            await FlushRowGroupAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes what is buffered and the Parquet footer, and flushes the CSV.</summary>
    public async Task CompleteAsync(CancellationToken cancellationToken)
    {
        // A table without rows still gets one (empty) row group, as before: readers see its schema.
        if (_parquet is not null && (_buffered > 0 || Rows == 0))
        {
            await FlushRowGroupAsync(cancellationToken).ConfigureAwait(false);
        }

        if (_csvText is not null)
        {
            await _csv!.FlushAsync().ConfigureAwait(false);
            await _csvText.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task FlushRowGroupAsync(CancellationToken ct)
    {
        using (var group = _parquet!.CreateRowGroup())
        {
            for (var i = 0; i < _fields.Length; i++)
            {
                switch (_types[i])
                {
                    case ColumnType.Int64:
                        await group.WriteAsync<long>(_fields[i], _longs[i].AsMemory(0, _buffered), cancellationToken: ct).ConfigureAwait(false);
                        break;
                    case ColumnType.Double:
                        await group.WriteAsync<double>(_fields[i], _doubles[i].AsMemory(0, _buffered), cancellationToken: ct).ConfigureAwait(false);
                        break;
                    default:
                        await group.WriteAsync(_fields[i], new ArraySegment<string>(_strings[i], 0, _buffered)).ConfigureAwait(false);
                        Array.Clear(_strings[i], 0, _buffered);
                        break;
                }
            }
        }

        _buffered = 0;
        _bufferedChars = 0;
    }

    /// <summary>Doubles every column's buffer (at most to a row group's rows), keeping the rows held.</summary>
    private void Grow()
    {
        _capacity = Math.Min(_capacity * 2, RowGroupRows);
        for (var i = 0; i < _types.Length; i++)
        {
            switch (_types[i])
            {
                case ColumnType.Int64:
                    Array.Resize(ref _longs[i], _capacity);
                    break;
                case ColumnType.Double:
                    Array.Resize(ref _doubles[i], _capacity);
                    break;
                default:
                    Array.Resize(ref _strings[i], _capacity);
                    break;
            }
        }
    }

    private static DataField[] Fields(IReadOnlyList<string> columns, ColumnType[] types) =>
        columns.Select((c, i) => types[i] switch
        {
            ColumnType.Int64 => (DataField)new DataField<long?>(c),
            ColumnType.Double => new DataField<double?>(c),
            _ => new DataField<string>(c, true),
        }).ToArray();

    public async ValueTask DisposeAsync()
    {
        if (_csv is not null)
        {
            await _csv.DisposeAsync().ConfigureAwait(false);
        }

        if (_parquet is not null)
        {
            await _parquet.DisposeAsync().ConfigureAwait(false);
        }
    }
}
