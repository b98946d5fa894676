using System.Text;
using Pipelines.Gather;
using Pipelines.Model;

namespace Pipelines.Tests.Gather;

/// <summary>The streaming reader of one table part: every check a part must pass, one row at a time.</summary>
[Unit]
public sealed class TableReaderTests
{
    private static readonly GatherSpec Tsv = new("stats", "s", "*.tsv", TableFormat.Tsv, Header: true, Columns: null, [ResultFormat.Parquet]);
    private static readonly GatherSpec Csv = Tsv with { Format = TableFormat.Csv };

    [Fact]
    public void A_tsv_part_yields_its_trimmed_header_and_rows_with_empty_cells_as_null_and_quotes_kept()
    {
        var (header, rows) = ReadAll(Tsv, " a \tb\tc\n1\t\t\"x\"\n\n2\ty, z\t3\n");

        Assert.Equal(["a", "b", "c"], header);
        Assert.Equal(2, rows.Count);
        Assert.Equal(Cells("1", null, "\"x\""), rows[0]);
        Assert.Equal(Cells("2", "y, z", "3"), rows[1]);
    }

    [Fact]
    public void A_csv_part_follows_rfc_4180_quoting_across_lines()
    {
        var (_, rows) = ReadAll(Csv, "a,b\n\"1,5\",\"say \"\"hi\"\"\"\n\"two\nlines\",\n");

        Assert.Equal(Cells("1,5", "say \"hi\""), rows[0]);
        Assert.Equal(Cells("two\nlines", null), rows[1]);
    }

    [Fact]
    public void A_part_without_header_takes_the_gathers_columns_for_its_width()
    {
        var spec = Tsv with { Header = false, Columns = ["x", "y"] };
        var (header, rows) = ReadAll(spec, "1\t2\n3\t4\n");

        Assert.Null(header);
        Assert.Equal(2, rows.Count);
        var e = Assert.Throws<MalformedPartException>(() => ReadAll(spec, "1\t2\n3\t4\t5\n"));
        Assert.Equal("gather 'stats': task t1: tasks/t1/s/p.tsv, line 2: 3 cells, expected 2 (x, y)", e.Message);
    }

    [Fact]
    public void A_row_with_the_wrong_number_of_cells_names_the_task_the_file_and_the_line()
    {
        var e = Assert.Throws<MalformedPartException>(() => ReadAll(Tsv, "a\tb\n1\t2\n3\n"));

        Assert.Equal("gather 'stats': task t1: tasks/t1/s/p.tsv, line 3: 1 cells, expected 2 (a, b)", e.Message);
        Assert.False(e.RetryHelps);
    }

    [Fact]
    public void A_stray_quote_in_a_csv_part_is_malformed_with_its_line()
    {
        var e = Assert.Throws<MalformedPartException>(() => ReadAll(Csv, "a,b\n1,2\n3,x\"y\n"));

        Assert.Contains("task t1: tasks/t1/s/p.tsv, line 3", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_utf8_is_malformed_with_its_line_instead_of_becoming_replacement_characters()
    {
        // Far enough in that the bad byte is in a later buffer than the first rows.
        var text = new StringBuilder("a\tb\n");
        for (var i = 0; i < 20_000; i++)
        {
            text.Append(i).Append("\tok\n");
        }

        var bytes = Encoding.UTF8.GetBytes(text.ToString()).Concat("x\t"u8.ToArray()).Concat(new byte[] { 0xC3, 0x28, (byte)'\n' }).ToArray();

        var e = Assert.Throws<MalformedPartException>(() => ReadAll(Tsv, bytes));

        Assert.Equal("gather 'stats': task t1: tasks/t1/s/p.tsv, line 20002: not valid UTF-8 (cells must be UTF-8 text)", e.Message);
    }

    [Fact]
    public void A_truncated_utf8_sequence_at_the_end_of_a_part_is_malformed()
    {
        var bytes = "a\tb\n1\t"u8.ToArray().Append((byte)0xE2).Append((byte)0x82).ToArray();

        var e = Assert.Throws<MalformedPartException>(() => ReadAll(Tsv, bytes));

        Assert.Contains("line 2: not valid UTF-8", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Multibyte_characters_cut_by_every_read_boundary_keep_their_bytes()
    {
        const string Text = "a\tb\nGrüße\t€𝄞\nnaïve\t日本\n";

        using var reader = TableReader.Open(new TrickleStream(Encoding.UTF8.GetBytes(Text)), "task t1: tasks/t1/s/p.tsv", Tsv);
        var rows = new List<string?[]>();
        while (reader.TryRead(out var row))
        {
            rows.Add(row);
        }

        Assert.Equal(Cells("Grüße", "€𝄞"), rows[0]);
        Assert.Equal(Cells("naïve", "日本"), rows[1]);
    }

    [Fact]
    public void An_empty_part_has_no_header_and_no_rows()
    {
        var (header, rows) = ReadAll(Tsv, "");

        Assert.Null(header);
        Assert.Empty(rows);
    }

    [Fact]
    public void A_small_part_is_read_with_buffers_of_its_size_not_of_64_KiB()
    {
        // A run of one-file tasks gathers thousands of one-line parts, each read twice: buffers of
        // 64 KiB (a 128 KiB character buffer on the large object heap, and the UTF-8 check's) made
        // the gather's cost grow with the parts, not the rows; then CsvHelper's own buffers at their
        // defaults and the check's character array were most of what a small part still cost.
        var bytes = "a\tb\n1\t2\n"u8.ToArray();
        ReadAll(Tsv, bytes);
        var before = GC.GetAllocatedBytesForCurrentThread();

        var (_, rows) = ReadAll(Tsv, bytes);

        Assert.Single(rows);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        // About 12 KiB now: the parser's buffers are of the part's size too, and the UTF-8 check
        // decodes into the stack (about 30 KiB before, 8 KiB of it each).
        Assert.True(allocated < 16 * 1024, $"reading a part of {bytes.Length} bytes allocated {allocated} bytes");
    }

    private static IEnumerable<string?> Cells(params string?[] cells) => cells;

    private static (IReadOnlyList<string>? Header, List<string?[]> Rows) ReadAll(GatherSpec spec, string content) =>
        ReadAll(spec, Encoding.UTF8.GetBytes(content));

    private static (IReadOnlyList<string>? Header, List<string?[]> Rows) ReadAll(GatherSpec spec, byte[] content)
    {
        using var reader = TableReader.Open(new MemoryStream(content), "task t1: tasks/t1/s/p.tsv", spec);
        var rows = new List<string?[]>();
        while (reader.TryRead(out var row))
        {
            rows.Add(row);
        }

        return (reader.Header, rows);
    }

    /// <summary>A stream that hands out one byte per read, so every character is cut by a read boundary.</summary>
    private sealed class TrickleStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(1, buffer.Length)]);

        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(1, count));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(1, buffer.Length)], cancellationToken);
    }
}
