using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Parquet;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;
using Pipelines.Usage;

namespace Pipelines.Tests.Usage;

/// <summary>
/// The usage export's three formats read one column list: CSV's header, JSON lines' names and
/// Parquet's schema are the same columns, with the same values; Parquet goes out in row groups,
/// through a stream that can neither seek nor tell its position (as a response body).
/// </summary>
[Unit]
public sealed class UsageExportTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Parquet_is_written_in_row_groups_to_a_stream_that_cannot_seek_and_reads_back_record_for_record()
    {
        const int count = (2 * UsageExport.RowGroupRows) + 17;
        using var sink = new MemoryStream();
        await using (var forwardOnly = new ForwardOnlyStream(sink))
        {
            Assert.Equal(count, await UsageExport.WriteAsync(Records(count), forwardOnly, UsageFormat.Parquet, CancellationToken.None));
        }

        sink.Position = 0;
        await using var reader = await ParquetReader.CreateAsync(sink);
        Assert.Equal(3, reader.RowGroupCount);
        Assert.Equal(UsageExport.Columns.Select(c => c.Name), reader.Schema.GetDataFields().Select(f => f.Name));
        var fields = reader.Schema.GetDataFields();
        var ids = new List<string>();
        var cpu = new List<double?>();
        var ended = new List<DateTime>();
        var harvested = new List<bool?>();
        var task = new List<long?>();
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var rg = reader.OpenRowGroupReader(g);
            var n = (int)rg.RowCount;
            var s = new string?[n];
            await rg.ReadAsync(fields.Single(f => f.Name == "id"), s.AsMemory());
            ids.AddRange(s.Select(id => id!));
            var d = new double?[n];
            await rg.ReadAsync<double>(fields.Single(f => f.Name == "cpu_seconds"), d.AsMemory());
            cpu.AddRange(d);
            var t = new DateTime[n];
            await rg.ReadAsync<DateTime>(fields.Single(f => f.Name == "ended_at"), t.AsMemory());
            ended.AddRange(t);
            var b = new bool?[n];
            await rg.ReadAsync<bool>(fields.Single(f => f.Name == "harvested"), b.AsMemory());
            harvested.AddRange(b);
            var l = new long?[n];
            await rg.ReadAsync<long>(fields.Single(f => f.Name == "task_index"), l.AsMemory());
            task.AddRange(l);
        }

        var expected = await ToListAsync(Records(count));
        Assert.Equal(expected.Select(r => r.Id), ids);
        Assert.Equal(expected.Select(r => r.CpuSeconds), cpu);
        Assert.Equal(expected.Select(r => r.EndedAt.UtcDateTime), ended.Select(e => DateTime.SpecifyKind(e, DateTimeKind.Utc)));
        Assert.Equal(expected.Select(r => (bool?)r.Harvested), harvested);
        Assert.Equal(expected.Select(r => (long?)r.TaskIndex), task);
    }

    [Fact]
    public async Task Csv_and_json_lines_name_the_same_columns_and_values_as_parquet()
    {
        var records = await ToListAsync(Records(3));
        var csv = await TextAsync(UsageFormat.Csv, records);
        var json = await TextAsync(UsageFormat.JsonLines, records);

        var lines = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(string.Join(',', UsageExport.Columns.Select(c => c.Name)), lines[0]);
        Assert.Equal(4, lines.Length);
        Assert.Contains("\"why, \"\"quoted\"\"\"", lines[2], StringComparison.Ordinal);

        var objects = json.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(3, objects.Count);
        Assert.All(objects, o => Assert.All(o.EnumerateObject(), p => Assert.Contains(p.Name, UsageExport.Columns.Select(c => c.Name))));
        Assert.Equal(records[1].Reason, objects[1].GetProperty("reason").GetString());
        Assert.Equal(records[1].CpuSeconds, objects[1].GetProperty("cpu_seconds").GetDouble());
        Assert.True(objects[1].GetProperty("harvested").GetBoolean());
        Assert.False(objects[0].TryGetProperty("cpu_seconds", out _));
        Assert.Equal("2026-12-01T10:00:01.0000000Z", objects[1].GetProperty("started_at").GetString());
    }

    private static async Task<string> TextAsync(UsageFormat format, IReadOnlyList<UsageRecord> records)
    {
        using var output = new MemoryStream();
        await UsageExport.WriteAsync(Async(records), output, format, CancellationToken.None);
        return Encoding.UTF8.GetString(output.ToArray());
    }

    private static async IAsyncEnumerable<UsageRecord> Records(int count, [EnumeratorCancellation] CancellationToken ct = default)
    {
        for (var i = 0; i < count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var start = Start.AddSeconds(i);
            yield return new UsageRecord(UsageRecord.TaskId("run-1", i, 1), TenantId.Parse("lab-x", "tenant"), UsageKinds.Task, start, start.AddMilliseconds(1500 + i), i % 2 == 1 ? UsageOutcomes.Vacated : UsageOutcomes.Succeeded)
            {
                RunId = "run-1",
                TaskIndex = i,
                Delivery = 1,
                Worker = "w1",
                WallSeconds = 1.5,
                CpuSeconds = i % 2 == 0 ? null : i * 0.25,
                Harvested = i % 2 == 1,
                BytesIn = i,
                Reason = i % 2 == 1 ? "why, \"quoted\"" : null,
            };
        }

        await Task.CompletedTask;
    }

    private static async IAsyncEnumerable<UsageRecord> Async(IEnumerable<UsageRecord> records)
    {
        foreach (var r in records)
        {
            yield return r;
        }

        await Task.CompletedTask;
    }

    private static async Task<List<UsageRecord>> ToListAsync(IAsyncEnumerable<UsageRecord> records)
    {
        var list = new List<UsageRecord>();
        await foreach (var r in records)
        {
            list.Add(r);
        }

        return list;
    }

    /// <summary>A response body's limits: writes only, asynchronous or not, and no position or length.</summary>
    private sealed class ForwardOnlyStream(Stream inner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => throw new InvalidOperationException("synchronous flush");

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new InvalidOperationException("synchronous write");

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);
    }
}
