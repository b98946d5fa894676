using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace Pipelines.Containers.Warm;

/// <summary>
/// The engine's one connection to a fork helper. The helper accepts it once and removes its
/// socket, so nothing a request starts can reach or replace this channel. Anything the helper
/// sends that is not the protocol throws <see cref="BrokenChannelException"/>.
/// </summary>
internal sealed class ForkChannel : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _header = new byte[5];
    private readonly byte[] _payload = new byte[WarmProtocol.MaxOutputChunk];

    private ForkChannel(Socket socket) => _socket = socket;

    /// <summary>
    /// Connects to the helper's socket as soon as it listens (tries again after 1, 2, 4 ... 50 ms),
    /// and reads its hello. Gives up when <paramref name="ended"/> says the container has ended.
    /// </summary>
    public static async Task<ForkChannel> ConnectAsync(string socketPath, Func<bool> ended, CancellationToken cancellationToken)
    {
        var socket = await UnixSocket.ConnectWhenListeningAsync(socketPath, ended, cancellationToken).ConfigureAwait(false);
        var channel = new ForkChannel(socket);
        try
        {
            var (type, length) = await channel.ReadFrameAsync(cancellationToken).ConfigureAwait(false);
            var hello = Encoding.UTF8.GetString(channel._payload, 0, length);
            if (type != WarmProtocol.HelloFrame || hello != WarmProtocol.Hello)
            {
                throw new BrokenChannelException($"the helper's first frame is not the hello {WarmProtocol.Hello}");
            }

            return channel;
        }
        catch
        {
            channel.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends one request and reads its output into <paramref name="log"/> until the exit frame.
    /// <paramref name="cancellationToken"/> asks the helper to cancel, <paramref name="timeUp"/>
    /// tells it the request's time is up (either way it kills the request's processes and
    /// answers); <paramref name="hung"/> gives up on a helper that does not answer.
    /// </summary>
    public async Task<ForkExit> RunAsync(byte[] request, BoundedLog log, CancellationToken timeUp, CancellationToken hung, CancellationToken cancellationToken)
    {
        await SendAsync(request, hung).ConfigureAwait(false);

        // One stop frame per request: the first of a cancel and the timeout is the one said.
        var stopSent = 0;
        void Stop(byte[] frame)
        {
            if (Interlocked.Exchange(ref stopSent, 1) == 0)
            {
                _ = SendStopAsync(frame);
            }
        }

        using var onCancel = cancellationToken.Register(() => Stop(WarmProtocol.Cancel()));
        using var onTimeUp = timeUp.Register(() => Stop(WarmProtocol.TimeUp()));
        while (true)
        {
            var (type, length) = await ReadFrameAsync(hung).ConfigureAwait(false);
            switch (type)
            {
                case WarmProtocol.StdoutFrame or WarmProtocol.StderrFrame:
                    log.Append(_payload.AsSpan(0, length));
                    break;
                case WarmProtocol.ExitFrame:
                    try
                    {
                        return WarmProtocol.ParseExit(_payload.AsSpan(0, length));
                    }
                    catch (FormatException e)
                    {
                        throw new BrokenChannelException(e.Message, e);
                    }

                case WarmProtocol.ProtocolErrorFrame:
                    throw new BrokenChannelException("the helper refused a frame: " + Encoding.UTF8.GetString(_payload, 0, length));
                default:
                    throw new BrokenChannelException($"a frame of unknown type 0x{type:x2}");
            }
        }
    }

    public void Dispose() => _socket.Dispose();

    private async Task SendStopAsync(byte[] frame)
    {
        try
        {
            // A frozen helper's socket still takes the frame: it reads it when it thaws.
            await _socket.SendAsync(frame, SocketFlags.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The channel broke meanwhile; the reader sees it and the container is replaced.
        }
    }

    private async Task SendAsync(byte[] frame, CancellationToken cancellationToken)
    {
        try
        {
            var sent = 0;
            while (sent < frame.Length)
            {
                sent += await _socket.SendAsync(frame.AsMemory(sent), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (SocketException e)
        {
            throw new BrokenChannelException("the helper's connection is closed: " + e.Message, e);
        }
    }

    private async Task<(byte Type, int Length)> ReadFrameAsync(CancellationToken cancellationToken)
    {
        await ReadExactAsync(_header, cancellationToken).ConfigureAwait(false);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(_header);

        // The helper never sends more than one output chunk, or the exit, in one frame.
        if (length < 1 || length - 1 > _payload.Length)
        {
            throw new BrokenChannelException($"a frame of {length} bytes, outside the protocol's 1..{_payload.Length + 1}");
        }

        await ReadExactAsync(_payload.AsMemory(0, (int)length - 1), cancellationToken).ConfigureAwait(false);
        return (_header[4], (int)length - 1);
    }

    private async Task ReadExactAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var got = 0;
        while (got < buffer.Length)
        {
            int read;
            try
            {
                read = await _socket.ReceiveAsync(buffer[got..], SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                throw new BrokenChannelException("the helper's connection broke: " + e.Message, e);
            }

            if (read == 0)
            {
                throw new BrokenChannelException("the helper closed its connection");
            }

            got += read;
        }
    }
}

/// <summary>A warm container's channel is no longer the protocol: the container is replaced.</summary>
internal sealed class BrokenChannelException(string message, Exception? inner = null) : Exception(message, inner);
