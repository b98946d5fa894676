using System.Buffers.Binary;
using System.Text;
using Pipelines.Containers.Warm;

namespace Pipelines.Tests.Warm;

/// <summary>The engine's side of the helper's frames, and the bounded request log.</summary>
[Unit]
public sealed class WarmProtocolTests
{
    [Fact]
    public void A_request_frame_holds_the_command_and_the_variables_length_prefixed_and_no_timeout()
    {
        var frame = WarmProtocol.Request(["echo", "héllo"], new Dictionary<string, string> { ["A"] = "1" });
        Assert.Equal((uint)frame.Length - 4, BinaryPrimitives.ReadUInt32LittleEndian(frame));
        Assert.Equal((byte)'R', frame[4]);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(5)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(9)));
        Assert.Equal(4u, BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(13)));
        Assert.Equal("echo", Encoding.UTF8.GetString(frame, 17, 4));
        Assert.Equal((uint)Encoding.UTF8.GetByteCount("héllo"), BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(21)));
        Assert.EndsWith("A=1", Encoding.UTF8.GetString(frame), StringComparison.Ordinal);
    }

    [Fact]
    public void A_request_the_helper_would_refuse_is_refused_first_by_name()
    {
        var e = Assert.Throws<PipelinesException>(() => WarmProtocol.Request(["echo", "a\0b"], new Dictionary<string, string>()));
        Assert.Equal("argument 1 of the command holds a NUL character", e.Message);
        e = Assert.Throws<PipelinesException>(() => WarmProtocol.Request(["echo"], new Dictionary<string, string> { ["A=B"] = "1" }));
        Assert.Contains("'A=B' is not a valid environment variable name", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<PipelinesException>(() => WarmProtocol.Request(["echo", new string('x', WarmProtocol.MaxFrame)], new Dictionary<string, string>()));
        Assert.Contains("more than a warm request may", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => WarmProtocol.Request([], new Dictionary<string, string>()));
    }

    [Fact]
    public void An_exit_frame_reads_as_docker_would_report_the_process()
    {
        var payload = new byte[WarmProtocol.ExitPayload];
        BinaryPrimitives.WriteUInt32LittleEndian(payload, 1);
        BinaryPrimitives.WriteInt32LittleEndian(payload.AsSpan(4), 9);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(8), 1 | 2);
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(24), 1500);
        var exit = WarmProtocol.ParseExit(payload);
        Assert.Equal(137, exit.ExitCode);
        Assert.True(exit.TimedOut);
        Assert.True(exit.OomKilled);
        Assert.False(exit.Cancelled);
        Assert.False(exit.NotEmptied);
        Assert.Equal(TimeSpan.FromMicroseconds(1500), exit.Run);

        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(8), 8);
        Assert.True(WarmProtocol.ParseExit(payload).NotEmptied);

        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(8), 64);
        Assert.Throws<FormatException>(() => WarmProtocol.ParseExit(payload));
        Assert.Throws<FormatException>(() => WarmProtocol.ParseExit(payload.AsSpan(1)));
    }

    [Fact]
    public void The_request_log_keeps_its_head_and_tail_and_says_what_it_cut()
    {
        var log = new BoundedLog(100);
        for (var i = 0; i < 1000; i++)
        {
            log.Append(Encoding.UTF8.GetBytes($"{i % 10}"));
        }

        var text = log.ToString();
        Assert.StartsWith("01234567890123456789", text, StringComparison.Ordinal);
        Assert.Contains("[pipelines: log cut: the first and last 50 of 1000 bytes are kept]", text, StringComparison.Ordinal);
        Assert.EndsWith("56789", text, StringComparison.Ordinal);
        Assert.Equal(50 + "\n[pipelines: log cut: the first and last 50 of 1000 bytes are kept]\n".Length + 50, text.Length);
    }
}
