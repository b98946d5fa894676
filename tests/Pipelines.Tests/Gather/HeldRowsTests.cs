using System.Text;
using Pipelines.Gather;
using Pipelines.Model;

namespace Pipelines.Tests.Gather;

/// <summary>
/// The budget of the rows a gather keeps from small parts (TableGather.HeldBudget): what it counts
/// for held rows must be what they take on the heap, and a part's worst case, taken before it
/// is parsed, must cover them, or the documented bound does not hold. The heap is measured, so
/// they run alone (after every parallel collection).
/// </summary>
[Unit]
[Collection(Name)]
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HeldRowsTests
{
    private const string Name = "the heap measured";

    [Theory]
    [InlineData("a\n")]            // one character a cell, one cell a line: the worst case a byte
    [InlineData("a,b\n")]
    [InlineData("sample-0001,1234,0.4567,some longer text here\n")]
    public void Held_rows_take_what_the_budget_counts_and_no_more_than_the_worst_case(string line)
    {
        var text = string.Concat(Enumerable.Repeat(line, 100_000));
        var bytes = Encoding.UTF8.GetBytes(text);

        var before = GC.GetTotalMemory(forceFullCollection: true);
        var rows = Read(bytes, line.Split(',').Length);
        var after = GC.GetTotalMemory(forceFullCollection: true);
        var taken = after - before;

        var counted = TableGather.HeldRows.SizeOf(rows);
        Assert.Equal(100_000, rows.Count);
        Assert.InRange(counted, taken * 9 / 10, taken * 12 / 10);
        Assert.True(TableGather.HeldRows.WorstCase(bytes.Length) >= taken, $"worst case {TableGather.HeldRows.WorstCase(bytes.Length)} < {taken} bytes held");
        GC.KeepAlive(rows);
    }

    [Fact]
    public void A_part_gives_back_what_its_rows_do_not_take_and_a_malformed_part_all_of_it()
    {
        var budget = new TableGather.HeldRows(1_000_000);
        Assert.True(budget.TryTake(1000));
        Assert.Equal(1_000_000 - TableGather.HeldRows.WorstCase(1000), budget.Left);

        List<string?[]> rows = [["a", "b"]];
        budget.Settle(1000, new TableGather.PartRead(null, null, rows, null));
        Assert.Equal(1_000_000 - TableGather.HeldRows.SizeOf(rows), budget.Left);

        Assert.True(budget.TryTake(1000));
        budget.Settle(1000, new TableGather.PartRead(null, null, null, new MalformedPartException("bad")));
        Assert.Equal(1_000_000 - TableGather.HeldRows.SizeOf(rows), budget.Left);

        Assert.False(budget.TryTake(1_000_000));
        Assert.Equal(1_000_000 - TableGather.HeldRows.SizeOf(rows), budget.Left);
    }

    private static List<string?[]> Read(byte[] bytes, int cells)
    {
        var spec = new GatherSpec("table", "make", "*.csv", TableFormat.Csv, Header: false, Columns: Enumerable.Range(0, cells).Select(i => $"c{i}").ToList(), [ResultFormat.Csv]);
        var rows = new List<string?[]>();
        using var reader = TableReader.Open(new MemoryStream(bytes, writable: false), "part", spec);
        while (reader.TryRead(out var row))
        {
            rows.Add(row);
        }

        return rows;
    }
}
