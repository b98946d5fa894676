using Parquet;
using Pipelines.Gather;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Gather;

/// <summary>
/// tasks.parquet written from a stream of rows, as the gather writes it: a row group at a time,
/// every row back in order, and a file with the columns when there is no row.
/// </summary>
[Unit]
public sealed class ProvenanceFileTests : IDisposable
{
    private static readonly DateTime Start = new(2026, 12, 7, 2, 0, 0, DateTimeKind.Utc);

    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task The_preparation_row_has_a_value_in_every_column_and_writes_a_file_that_reads_back()
    {
        // The preparation (GatherPreparation) makes every column's encoder ahead of a gather only
        // when its row fills every column: a column added to ProvenanceRow must be given a value there.
        var row = ProvenanceFile.PreparationRow();
        var empty = typeof(ProvenanceRow).GetProperties()
            .Where(p => p.GetValue(row) is null or "" or System.Collections.ICollection { Count: 0 })
            .Select(p => p.Name);
        Assert.Empty(empty);

        await ProvenanceFile.PrepareAsync(CancellationToken.None);
        var path = _temp.Combine("prepared.parquet");
        await ProvenanceFile.WriteAsync([row], path, CancellationToken.None);
        var back = Assert.Single(await ProvenanceFile.ReadRowsAsync(path, CancellationToken.None).ToListAsync());
        Assert.Equal((row.TaskId, row.Outputs[0].Key, row.SpanId), (back.TaskId, back.Outputs[0].Key, back.SpanId));
    }

    [Fact]
    public async Task A_stream_of_rows_is_written_a_bounded_row_group_at_a_time_and_reads_back_in_order()
    {
        var n = (2 * ProvenanceFile.RowGroupRows) + 1;
        var path = _temp.Combine("tasks.parquet");

        var written = await ProvenanceFile.WriteAsync(Rows(n), path, CancellationToken.None);

        Assert.Equal(n, written);
        await using (var file = File.OpenRead(path))
        await using (var reader = await ParquetReader.CreateAsync(file))
        {
            Assert.Equal(3, reader.RowGroupCount);
            Assert.Equal([ProvenanceFile.RowGroupRows, ProvenanceFile.RowGroupRows, 1], Enumerable.Range(0, 3).Select(g => reader.OpenRowGroupReader(g).RowCount));
        }

        var read = await ProvenanceFile.ReadRowsAsync(path, CancellationToken.None).ToListAsync();
        Assert.Equal(Enumerable.Range(0, n), read.Select(r => r.TaskIndex));
        Assert.Equal(($"t{n - 1}", $"tasks/t{n - 1}/stats/out.tsv", Start.AddSeconds(n - 1)), (read[^1].TaskId, read[^1].Outputs[0].Key, read[^1].StartedAt));
    }

    [Fact]
    public async Task A_run_of_no_row_gets_a_file_of_no_row_that_reads_back_empty()
    {
        var path = _temp.Combine("tasks.parquet");

        Assert.Equal(0, await ProvenanceFile.WriteAsync(AsyncEnumerable.Empty<ProvenanceRow>(), path, CancellationToken.None));

        Assert.Empty(await ProvenanceFile.ReadRowsAsync(path, CancellationToken.None).ToListAsync());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(ProvenanceFile.RowGroupRows)]
    [InlineData(ProvenanceFile.RowGroupRows + 1)]
    public async Task The_rows_of_one_row_group_are_held_as_the_file_reads_them_back_and_more_are_not(int n)
    {
        var path = _temp.Combine("tasks.parquet");

        var (written, held) = await ProvenanceFile.WriteAndHoldAsync(Rows(n, odd: true), path, CancellationToken.None);

        Assert.Equal(n, written);
        if (n > ProvenanceFile.RowGroupRows)
        {
            Assert.Null(held);
            return;
        }

        // Every field as the file gives it back (times to the tick, nulls, lists): the report
        // and the RO-Crate drawn from the held rows are those drawn from the file.
        var read = await ProvenanceFile.ReadRowsAsync(path, CancellationToken.None).ToListAsync();
        Assert.NotNull(held);
        Assert.Equal(read.Select(r => System.Text.Json.JsonSerializer.Serialize(r)), held.Select(r => System.Text.Json.JsonSerializer.Serialize(r)));
    }

    private static async IAsyncEnumerable<ProvenanceRow> Rows(int n, bool odd = false)
    {
        for (var i = 0; i < n; i++)
        {
            await Task.Yield();
            var row = new ProvenanceRow
            {
                RunId = "r",
                TaskId = "t" + i,
                TaskIndex = i,
                Attempt = 1,
                Step = "stats",
                Status = "succeeded",
                Command = ["stats", "/in"],
                Inputs = [new FileRef { Key = $"in/{i}.fastq", Size = 10, Sha256 = "s" }],
                Outputs = [new FileRef { Key = $"tasks/t{i}/stats/out.tsv", Size = 5, Sha256 = "o" }],
                StartedAt = Start.AddSeconds(i),
                FinishedAt = Start.AddSeconds(i + 1),
                Worker = "w:1",
            };
            if (odd)
            {
                // What a real row holds besides: times to the tick, an error, a cache's origin, resources, a second output.
                row.StartedAt = row.StartedAt.AddTicks(1_234_567 + i);
                row.FinishedAt = row.FinishedAt.AddTicks(7_654_321);
                row.ExitCode = i % 2 == 0 ? 0 : null;
                row.Error = i % 3 == 0 ? null : "exit 1: ünïcode";
                row.CachedFrom = i % 5 == 0 ? "run-0" : null;
                row.Log = "tasks/t/stats.log";
                row.CpuSeconds = i % 4 == 0 ? null : 0.123456789 * i;
                row.PeakMemoryBytes = 1L << 40;
                row.Outputs.Add(new FileRef { Key = "tasks/t/stats/b.tsv", Size = 0, Sha256 = "" });
            }

            yield return row;
        }
    }
}
