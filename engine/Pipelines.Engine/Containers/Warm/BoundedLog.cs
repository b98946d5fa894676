using System.Globalization;
using System.Text;

namespace Pipelines.Containers.Warm;

/// <summary>
/// A request's stdout and stderr as they came, bounded: the first and last halves of
/// <c>maxBytes</c> are kept and the middle cut with a note, as DockerRuntime keeps a one-shot log.
/// Memory stays at most <c>maxBytes</c> whatever the command prints.
/// </summary>
internal sealed class BoundedLog(int maxBytes)
{
    private readonly int _half = Math.Max(1, maxBytes / 2);
    private readonly MemoryStream _head = new();
    private byte[]? _tail;
    private long _tailCount;
    private long _total;

    public void Append(ReadOnlySpan<byte> bytes)
    {
        var toHead = (int)Math.Clamp(_half - _total, 0, bytes.Length);
        _head.Write(bytes[..toHead]);
        if (toHead < bytes.Length)
        {
            _tail ??= new byte[_half];
            foreach (var b in bytes[toHead..])
            {
                _tail[_tailCount++ % _half] = b;
            }
        }

        _total += bytes.Length;
    }

    /// <summary>The last <paramref name="bytes"/> bytes kept, for an error message.</summary>
    public string Tail(int bytes)
    {
        var all = ToString();
        return all.Length <= bytes ? all : all[^bytes..];
    }

    public override string ToString()
    {
        var text = new StringBuilder(Encoding.UTF8.GetString(_head.GetBuffer(), 0, (int)_head.Length));
        if (_tailCount > _half)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n[pipelines: log cut: the first and last {_half} of {_total} bytes are kept]\n");
        }

        if (_tail is null)
        {
            return text.ToString();
        }

        var start = _tailCount > _half ? (int)(_tailCount % _half) : 0;
        var count = (int)Math.Min(_tailCount, _half);
        var ordered = new byte[count];
        for (var i = 0; i < count; i++)
        {
            ordered[i] = _tail[(start + i) % _half];
        }

        return text.Append(Encoding.UTF8.GetString(ordered)).ToString();
    }
}
