using System.Buffers.Binary;
using System.Text;

namespace Pipelines.Containers.Warm;

/// <summary>
/// The fork helper's frames (engine/native/warm-helper.c, docs/functions.md): a u32
/// little-endian length of what follows (1 byte of type plus the payload), the type, the payload.
/// </summary>
internal static class WarmProtocol
{
    public const string Hello = "pipelines-warm/2";

    /// <summary>The longest frame either side sends; anything longer is a protocol break.</summary>
    public const int MaxFrame = 1 << 20;

    /// <summary>The helper sends output in chunks of at most this (its CHUNK).</summary>
    public const int MaxOutputChunk = 32768;

    public const byte HelloFrame = (byte)'H';
    public const byte RequestFrame = (byte)'R';
    public const byte CancelFrame = (byte)'C';
    public const byte TimeUpFrame = (byte)'T';
    public const byte StdoutFrame = (byte)'O';
    public const byte StderrFrame = (byte)'E';
    public const byte ExitFrame = (byte)'X';
    public const byte ProtocolErrorFrame = (byte)'P';

    public const int ExitPayload = 40;

    /// <summary>
    /// A request frame, whole: argv and the variables added to the container's environment. It
    /// carries no timeout: the engine keeps the deadline (<see cref="RunTimeout"/>) and sends
    /// <see cref="TimeUp"/>, since only the engine knows how long the container was held frozen.
    /// </summary>
    public static byte[] Request(IReadOnlyList<string> command, IReadOnlyDictionary<string, string> env)
    {
        if (command.Count == 0)
        {
            throw new ArgumentException("a warm request needs a command (the program first)", nameof(command));
        }

        var strings = command.Concat(env.Select(kv => $"{kv.Key}={kv.Value}")).Select(Encoding.UTF8.GetBytes).ToList();
        foreach (var (s, i) in strings.Select((s, i) => (s, i)))
        {
            if (Array.IndexOf(s, (byte)0) >= 0)
            {
                throw new PipelinesException(i < command.Count ? $"argument {i} of the command holds a NUL character" : "an environment variable holds a NUL character", retryHelps: false);
            }
        }

        foreach (var name in env.Keys.Where(k => k.Length == 0 || k.Contains('=', StringComparison.Ordinal)))
        {
            throw new PipelinesException($"'{name}' is not a valid environment variable name", retryHelps: false);
        }

        var payload = 8 + strings.Sum(s => 4 + s.Length);
        if (payload + 1 > MaxFrame)
        {
            throw new PipelinesException($"the command and its environment take {payload} bytes, more than a warm request may ({MaxFrame})", retryHelps: false);
        }

        var frame = new byte[5 + payload];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)(payload + 1));
        frame[4] = RequestFrame;
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(5), (uint)command.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(9), (uint)env.Count);
        var at = 13;
        foreach (var s in strings)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(at), (uint)s.Length);
            s.CopyTo(frame, at + 4);
            at += 4 + s.Length;
        }

        return frame;
    }

    public static byte[] Cancel() => [1, 0, 0, 0, CancelFrame];

    /// <summary>The running request's time is up: the helper kills it and answers it timed out.</summary>
    public static byte[] TimeUp() => [1, 0, 0, 0, TimeUpFrame];

    /// <summary>How a request ended, as the helper's exit frame says.</summary>
    public static ForkExit ParseExit(ReadOnlySpan<byte> payload)
    {
        if (payload.Length != ExitPayload)
        {
            throw new FormatException($"an exit frame of {payload.Length} bytes, not {ExitPayload}");
        }

        var kind = BinaryPrimitives.ReadUInt32LittleEndian(payload);
        var value = BinaryPrimitives.ReadInt32LittleEndian(payload[4..]);
        var flags = BinaryPrimitives.ReadUInt32LittleEndian(payload[8..]);
        if (kind > 2 || (flags & ~15u) != 0)
        {
            throw new FormatException($"an exit frame with kind {kind} and flags {flags}");
        }

        return new ForkExit(
            // As Docker reports a container's first process: its code, or 128 plus the signal that killed it.
            kind switch { 0 => value, 1 => 128 + value, _ => 127 },
            TimedOut: (flags & 1) != 0,
            OomKilled: (flags & 2) != 0,
            Cancelled: (flags & 4) != 0,
            NotEmptied: (flags & 8) != 0,
            Fork: Micros(payload[16..]),
            Run: Micros(payload[24..]),
            Cleanup: Micros(payload[32..]));

        static TimeSpan Micros(ReadOnlySpan<byte> b) => TimeSpan.FromMicroseconds(BinaryPrimitives.ReadUInt64LittleEndian(b));
    }
}

/// <summary>
/// The helper's account of one request: exit code as Docker would say it, where its time went, and
/// whether it left /tmp, /dev/shm or /dev/mqueue not empty (<see cref="NotEmptied"/>: the container must not serve again).
/// </summary>
internal sealed record ForkExit(long ExitCode, bool TimedOut, bool OomKilled, bool Cancelled, bool NotEmptied, TimeSpan Fork, TimeSpan Run, TimeSpan Cleanup);
