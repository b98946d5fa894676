using System.Globalization;

namespace Pipelines.Gather;

/// <summary>A Parquet column's type: INT64 when every cell is a whole number, DOUBLE when every cell is a number, else text.</summary>
internal enum ColumnType { Int64, Double, Text }

/// <summary>
/// Infers each column's type from the rows seen so far, one row at a time. Empty cells (null)
/// do not count; a column with no cell at all is text. The types only widen (INT64, DOUBLE,
/// text), so the inference of a whole table is the widest of its parts' inferences.
/// </summary>
internal sealed class ColumnTypes
{
    private readonly ColumnType[] _types;
    private readonly bool[] _seen;

    public ColumnTypes(int columns)
    {
        _types = new ColumnType[columns];
        _seen = new bool[columns];
    }

    public int Count => _types.Length;

    public void Observe(string?[] row)
    {
        for (var i = 0; i < _types.Length; i++)
        {
            var cell = row[i];
            if (cell is null || _types[i] == ColumnType.Text)
            {
                _seen[i] |= cell is not null;
                continue;
            }

            _seen[i] = true;
            if (_types[i] == ColumnType.Int64 && !IsInt64(cell))
            {
                _types[i] = ColumnType.Double;
            }

            if (_types[i] == ColumnType.Double && !IsDouble(cell))
            {
                _types[i] = ColumnType.Text;
            }
        }
    }

    /// <summary>Widens these types by another part's.</summary>
    public void Merge(ColumnTypes other)
    {
        for (var i = 0; i < _types.Length; i++)
        {
            if (other._seen[i])
            {
                _seen[i] = true;
                _types[i] = (ColumnType)Math.Max((int)_types[i], (int)other._types[i]);
            }
        }
    }

    public ColumnType this[int column] => _seen[column] ? _types[column] : ColumnType.Text;

    public static bool IsInt64(string cell) => long.TryParse(cell, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _);

    public static bool IsDouble(string cell) => double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    public static long ParseInt64(string cell) => long.Parse(cell, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);

    public static double ParseDouble(string cell) => double.Parse(cell, NumberStyles.Float, CultureInfo.InvariantCulture);
}
