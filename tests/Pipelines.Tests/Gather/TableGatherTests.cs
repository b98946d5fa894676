using System.Globalization;
using System.Text;
using Parquet;
using Pipelines.Gather;
using Pipelines.Model;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Gather;

/// <summary>One gather's two passes over real parts in a local run folder, read back with Parquet.Net's reader.</summary>
[Unit]
public sealed class TableGatherTests : IDisposable
{
    private static readonly GatherSpec Spec = new("table", "make", "*.tsv", TableFormat.Tsv, Header: true, Columns: null, [ResultFormat.Parquet, ResultFormat.Csv]);

    private readonly TempFolder _temp = new();
    private readonly StorageLocation _run;

    public TableGatherTests()
    {
        _run = new StorageLocation(new LocalObjectStore(_temp.Combine("run")), "", _temp.Combine("run") + "/");
        Directory.CreateDirectory(_temp.Combine("run"));
    }

    [Fact]
    public async Task A_table_of_several_row_groups_reads_back_row_for_row_with_its_types()
    {
        // 200,000 rows in three parts: more than three row groups of 65,536 rows.
        var parts = new List<TablePartRef>();
        var n = 0;
        foreach (var (task, count) in new[] { ("t1", 90_000), ("t2", 60_000), ("t3", 50_000) })
        {
            var text = new StringBuilder("n\tratio\tname\tmaybe\n");
            for (var i = 0; i < count; i++, n++)
            {
                text.Append(CultureInfo.InvariantCulture, $"{n}\t{n / 4.0}\tname-{n}\t{(n % 3 == 0 ? "" : n.ToString(CultureInfo.InvariantCulture))}\n");
            }

            parts.Add(await PartAsync(task, "part.tsv", text.ToString()));
        }

        var table = await TableGather.GatherAsync(Spec, parts, _run, leaveOutMalformed: false, _temp.Combine("scratch"), CancellationToken.None);

        Assert.Equal(200_000, table.Rows);
        Assert.Empty(table.Problems);
        Assert.Equal(["results/table.parquet", "results/table.csv"], table.Keys);
        var bytes = await File.ReadAllBytesAsync(_temp.Combine("run", "results", "table.parquet"));
        await using (var reader = await ParquetReader.CreateAsync(new MemoryStream(bytes)))
        {
            Assert.True(reader.RowGroupCount >= 4, $"{reader.RowGroupCount} row groups");
            Assert.All(Enumerable.Range(0, reader.RowGroupCount), g => Assert.True(reader.OpenRowGroupReader(g).RowCount <= TableWriter.RowGroupRows));
        }

        var rows = await ParquetTables.ReadAsync(bytes);
        Assert.Equal(200_000, rows.Count);
        foreach (var i in new[] { 0, 1, 1_023, 1_024, 2_047, 2_048, 65_535, 65_536, 89_999, 90_000, 131_072, 199_999 })
        {
            Assert.Equal((long)i, rows[i]["n"]);
            Assert.Equal(i / 4.0, rows[i]["ratio"]);
            Assert.Equal($"name-{i}", rows[i]["name"]);
            Assert.Equal(i % 3 == 0 ? null : (long?)i, Cell(rows[i], "maybe"));
            Assert.Equal(i < 90_000 ? "t1" : i < 150_000 ? "t2" : "t3", rows[i]["_task_id"]);
        }

        var csv = await File.ReadAllLinesAsync(_temp.Combine("run", "results", "table.csv"));
        Assert.Equal("n,ratio,name,maybe,_task_id,_source_file,_part", csv[0]);
        Assert.Equal(200_001, csv.Length);
        Assert.Equal("65536,16384,name-65536,65536,t1,,tasks/t1/make/part.tsv", csv[65_537]);
        Assert.Equal("90000,22500,name-90000,,t2,,tasks/t2/make/part.tsv", csv[90_001]);
    }

    [Fact]
    public async Task A_column_is_double_when_one_part_has_a_fraction_and_text_when_one_has_a_word()
    {
        var parts = new[]
        {
            await PartAsync("t1", "a.tsv", "x\ty\n1\t2\n"),
            await PartAsync("t2", "a.tsv", "x\ty\n1.5\tword\n\t3\n"),
        };

        await TableGather.GatherAsync(Spec, parts, _run, leaveOutMalformed: false, _temp.Combine("scratch"), CancellationToken.None);

        var rows = await ParquetTables.ReadAsync(await File.ReadAllBytesAsync(_temp.Combine("run", "results", "table.parquet")));
        Assert.Equal([1.0, 1.5, null], rows.Select(r => Cell(r, "x")));
        Assert.Equal(["2", "word", "3"], rows.Select(r => r["y"]));
    }

    [Fact]
    public async Task Under_continue_malformed_parts_are_left_out_and_named_and_the_types_come_from_the_kept_parts()
    {
        var parts = new[]
        {
            await PartAsync("t1", "a.tsv", "x\ty\n1\t2\n"),
            await PartAsync("t2", "a.tsv", "x\tz\n3\t4\n"),
            await PartAsync("t3", "a.tsv", "x\ty\nnot-a-number\t5\n6\n"),
            await PartAsync("t4", "a.tsv", "x\ty\n7\t8\n"),
        };

        var table = await TableGather.GatherAsync(Spec, parts, _run, leaveOutMalformed: true, _temp.Combine("scratch"), CancellationToken.None);

        Assert.Equal(2, table.Rows);
        Assert.Equal(
            [
                "gather 'table': task t2: tasks/t2/make/a.tsv has the header (x, z), but earlier parts have (x, y)",
                "gather 'table': task t3: tasks/t3/make/a.tsv, line 3: 1 cells, expected 2 (x, y)",
            ],
            table.Problems);
        var rows = await ParquetTables.ReadAsync(await File.ReadAllBytesAsync(_temp.Combine("run", "results", "table.parquet")));
        Assert.Equal([1L, 7L], rows.Select(r => r["x"]));
        Assert.Equal(["t1", "t4"], rows.Select(r => r["_task_id"]));
    }

    [Fact]
    public async Task Under_fail_the_first_malformed_part_fails_the_gather_and_writes_no_result()
    {
        var parts = new[]
        {
            await PartAsync("t1", "a.tsv", "x\ty\n1\t2\n"),
            await PartAsync("t2", "a.tsv", "x\ty\n3\t4\t5\n"),
        };

        var e = await Assert.ThrowsAsync<MalformedPartException>(() => TableGather.GatherAsync(Spec, parts, _run, leaveOutMalformed: false, _temp.Combine("scratch"), CancellationToken.None));

        Assert.Equal("gather 'table': task t2: tasks/t2/make/a.tsv, line 2: 3 cells, expected 2 (x, y)", e.Message);
        Assert.False(Directory.Exists(_temp.Combine("run", "results")));
    }

    [Fact]
    public async Task A_gather_without_parts_writes_an_empty_table_that_still_reads_back()
    {
        var spec = Spec with { Header = false, Columns = ["a", "b"] };

        var table = await TableGather.GatherAsync(spec, [], _run, leaveOutMalformed: true, _temp.Combine("scratch"), CancellationToken.None);

        Assert.Equal(0, table.Rows);
        var rows = await ParquetTables.ReadAsync(await File.ReadAllBytesAsync(_temp.Combine("run", "results", "table.parquet")));
        Assert.Empty(rows);
        Assert.Equal(["a,b,_task_id,_source_file,_part"], await File.ReadAllLinesAsync(_temp.Combine("run", "results", "table.csv")));
    }

    // Parquet.Net's untyped reader leaves null cells out of a row.
    private static object? Cell(IDictionary<string, object?> row, string column) => row.TryGetValue(column, out var v) ? v : null;

    [Fact]
    public async Task Many_parts_read_at_once_keep_their_order_and_a_malformed_one_among_them_is_named()
    {
        // More parts than a window of reads, each read path among them: small parts read in place
        // (rows kept), a part larger than a small one (a local copy read twice), a part that is a
        // link (downloaded to the file it leads to, as before), and two malformed parts.
        var parts = new List<TablePartRef>();
        var expected = new List<string>();
        for (var i = 0; i < 700; i++)
        {
            var task = $"t{i:D3}";
            var lines = i == 400 ? 8_000 : 1 + (i % 3);
            var text = new StringBuilder("n\tname\n");
            for (var l = 0; l < lines; l++)
            {
                text.Append(CultureInfo.InvariantCulture, $"{i * 10_000 + l}\tpart {i} line {l}\n");
            }

            if (i is 290 or 517)
            {
                text.Append("1\t2\t3\n");
            }
            else
            {
                expected.AddRange(Enumerable.Range(0, lines).Select(l => $"{i * 10_000 + l},part {i} line {l},{task},,tasks/{task}/make/a.tsv"));
            }

            if (i == 3)
            {
                _temp.Write("elsewhere/a.tsv", text.ToString());
                Directory.CreateDirectory(_temp.Combine("run", "tasks", task, "make"));
                File.CreateSymbolicLink(_temp.Combine("run", "tasks", task, "make", "a.tsv"), _temp.Combine("elsewhere", "a.tsv"));
                parts.Add(new TablePartRef(task, $"tasks/{task}/make/a.tsv"));
                continue;
            }

            parts.Add(await PartAsync(task, "a.tsv", text.ToString()));
        }

        Assert.True(new FileInfo(_temp.Combine("run", "tasks", "t400", "make", "a.tsv")).Length > TableGather.SmallPart);

        var table = await TableGather.GatherAsync(Spec, parts, _run, leaveOutMalformed: true, _temp.Combine("scratch"), CancellationToken.None);

        Assert.Equal(
            [
                "gather 'table': task t290: tasks/t290/make/a.tsv, line 5: 3 cells, expected 2 (n, name)",
                "gather 'table': task t517: tasks/t517/make/a.tsv, line 4: 3 cells, expected 2 (n, name)",
            ],
            table.Problems);
        Assert.Equal(expected.Count, table.Rows);
        var csv = await File.ReadAllLinesAsync(_temp.Combine("run", "results", "table.csv"));
        Assert.Equal(["n,name,_task_id,_source_file,_part", .. expected], csv);
        var rows = await ParquetTables.ReadAsync(await File.ReadAllBytesAsync(_temp.Combine("run", "results", "table.parquet")));
        Assert.Equal(expected.Select(e => long.Parse(e.Split(',')[0], CultureInfo.InvariantCulture)), rows.Select(r => (long)r["n"]!));

        // Refused rather than left out: the first malformed part in task order is the one named, and nothing is written.
        var e = await Assert.ThrowsAsync<MalformedPartException>(() => TableGather.GatherAsync(Spec, parts, _run, leaveOutMalformed: false, _temp.Combine("scratch2"), CancellationToken.None));
        Assert.Equal("gather 'table': task t290: tasks/t290/make/a.tsv, line 5: 3 cells, expected 2 (n, name)", e.Message);
    }

    [Fact]
    public async Task Small_parts_past_the_budget_of_kept_rows_are_read_twice_from_copies_in_their_order()
    {
        // 300 parts just under the small-part size: their kept rows (a cell's characters are two
        // bytes each) would pass the budget, so the first are held and later ones are local
        // copies read again by pass 2, in their order.
        var cell = new string('x', 600);
        var rowsPerPart = (TableGather.SmallPart - 100) / 620;
        var parts = new List<TablePartRef>();
        for (var i = 0; i < 300; i++)
        {
            var text = new StringBuilder("n\tname\n");
            for (var l = 0; l < rowsPerPart; l++)
            {
                text.Append(CultureInfo.InvariantCulture, $"{(i * 1000) + l}\t{cell}\n");
            }

            parts.Add(await PartAsync($"t{i:D3}", "a.tsv", text.ToString()));
        }

        Assert.True(300L * 2 * new FileInfo(_temp.Combine("run", "tasks", "t000", "make", "a.tsv")).Length > TableGather.HeldBudget);

        var table = await TableGather.GatherAsync(Spec, parts, _run, leaveOutMalformed: false, _temp.Combine("scratch"), CancellationToken.None);

        Assert.Equal(300L * rowsPerPart, table.Rows);
        var rows = await ParquetTables.ReadAsync(await File.ReadAllBytesAsync(_temp.Combine("run", "results", "table.parquet")));
        Assert.Equal(Enumerable.Range(0, 300).SelectMany(i => Enumerable.Range(0, rowsPerPart).Select(l => (long)((i * 1000) + l))), rows.Select(r => (long)r["n"]!));
        Assert.False(File.Exists(_temp.Combine("scratch", "gather-table", "part-000000")), "the first part was read in place");
        // Which parts are copied depends on the order the four readers take the budget in (a
        // part takes its worst case before it is parsed); that some are is the budget held.
        Assert.NotEmpty(Directory.GetFiles(_temp.Combine("scratch", "gather-table"), "part-*"));
    }

    [Fact]
    public async Task A_header_unlike_the_first_kept_parts_is_named_beyond_the_first_window_of_reads()
    {
        var parts = new List<TablePartRef>
        {
            // The first part is malformed: its header does not name the columns, the second's does.
            await PartAsync("t000", "a.tsv", "x\ty\n1\n"),
        };
        for (var i = 1; i < 300; i++)
        {
            parts.Add(await PartAsync($"t{i:D3}", "a.tsv", i == 299 ? "n\tname\n5\tb\n" : "n\tother\n1\tx\n"));
        }

        var table = await TableGather.GatherAsync(Spec, parts, _run, leaveOutMalformed: true, _temp.Combine("scratch"), CancellationToken.None);

        Assert.Equal(298, table.Rows);
        Assert.Equal(
            [
                "gather 'table': task t000: tasks/t000/make/a.tsv, line 2: 1 cells, expected 2 (x, y)",
                "gather 'table': task t299: tasks/t299/make/a.tsv has the header (n, name), but earlier parts have (n, other)",
            ],
            table.Problems);
    }

    private async Task<TablePartRef> PartAsync(string task, string name, string content)
    {
        var key = $"tasks/{task}/make/{name}";
        Directory.CreateDirectory(Path.GetDirectoryName(_temp.Combine("run", key))!);
        await File.WriteAllTextAsync(_temp.Combine("run", key), content);
        return new TablePartRef(task, key);
    }

    public void Dispose() => _temp.Dispose();
}
