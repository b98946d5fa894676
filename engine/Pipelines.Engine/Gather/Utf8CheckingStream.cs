using System.Buffers;
using System.Text.Unicode;

namespace Pipelines.Gather;

/// <summary>
/// A read-only pass-through that refuses bytes that are not UTF-8, naming the line (1-based, by
/// '\n') where they are. Checking the bytes before a decoder sees them gives the exact line:
/// a decoder works a buffer ahead of the parser, so its error cannot say where it was.
/// </summary>
internal sealed class Utf8CheckingStream(Stream inner, string partName) : Stream
{
    // A UTF-8 sequence is at most 4 bytes: at most 3 can wait for the next read.
    private readonly byte[] _carry = new byte[4];
    private int _carried;
    private long _line = 1;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var read = inner.Read(buffer);
        Check(buffer[..read], final: read == 0);
        return read;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        Check(buffer.Span[..read], final: read == 0);
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private void Check(ReadOnlySpan<byte> data, bool final)
    {
        if (_carried > 0)
        {
            // Complete the sequence cut at the end of the last read before checking the rest.
            var take = Math.Min(data.Length, _carry.Length - _carried);
            data[..take].CopyTo(_carry.AsSpan(_carried));
            var status = Decode(_carry.AsSpan(0, _carried + take), final, out var consumed);
            if (status == OperationStatus.InvalidData && consumed < _carried)
            {
                Fail();
            }

            if (consumed < _carried)
            {
                // Still incomplete: every byte read so far belongs to the one sequence.
                _carried += take;
                return;
            }

            var fromData = consumed - _carried;
            _line += data[..fromData].Count((byte)'\n');
            data = data[fromData..];
            _carried = 0;
        }

        var result = Decode(data, final, out var done);
        _line += data[..done].Count((byte)'\n');
        if (result == OperationStatus.InvalidData)
        {
            Fail();
        }

        if (result == OperationStatus.NeedMoreData)
        {
            data[done..].CopyTo(_carry);
            _carried = data.Length - done;
        }
    }

    /// <summary>
    /// Decodes <paramref name="data"/> into a buffer on the stack, a slice at a time, only to learn
    /// how far it is UTF-8: a part of a one-file task is a line or two, read twice by the gather,
    /// and a character array per read was 8 KiB a part (docs/benchmarks.md, "Per-file tasks").
    /// </summary>
    private static OperationStatus Decode(ReadOnlySpan<byte> data, bool final, out int consumed)
    {
        // 256 characters hold any one sequence (at most 2), so each slice moves on.
        Span<char> chars = stackalloc char[256];
        consumed = 0;
        while (true)
        {
            var status = Utf8.ToUtf16(data[consumed..], chars, out var read, out _, replaceInvalidSequences: false, isFinalBlock: final);
            consumed += read;
            if (status != OperationStatus.DestinationTooSmall)
            {
                return status;
            }
        }
    }

    private void Fail() =>
        throw new MalformedPartException($"{partName}, line {_line}: not valid UTF-8 (cells must be UTF-8 text)");

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
