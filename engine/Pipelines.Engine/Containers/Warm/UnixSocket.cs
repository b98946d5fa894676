using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Pipelines.Containers.Warm;

/// <summary>Unix sockets in a warm container's control folder, and the one libc call .NET lacks for it (chown).</summary>
internal static partial class UnixSocket
{
    /// <summary>The longest path a Unix socket may have (sun_path is 108 bytes with its NUL).</summary>
    public const int MaxPath = 107;

    /// <summary>
    /// Connects as soon as something listens at <paramref name="path"/>: tries at once, then after
    /// 1, 2, 4 ... 50 ms, until <paramref name="ended"/> says the container is gone or the token ends.
    /// </summary>
    public static async Task<Socket> ConnectWhenListeningAsync(string path, Func<bool> ended, CancellationToken cancellationToken)
    {
        var endpoint = new UnixDomainSocketEndPoint(path);
        var delay = TimeSpan.FromMilliseconds(1);
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
                return socket;
            }
            catch (SocketException)
            {
                // Not there yet, or nothing listens yet (or something that is not a socket is in its place).
                socket.Dispose();
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            if (ended())
            {
                throw new BrokenChannelException("the container ended before it listened on " + Path.GetFileName(path));
            }

            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            delay = TimeSpan.FromMilliseconds(Math.Min(50, delay.TotalMilliseconds * 2));
        }
    }

    /// <summary>Gives a host folder to the container's user (uid:gid as Docker:User says).</summary>
    public static void Chown(string path, string user)
    {
        var parts = user.Split(':');
        if (!uint.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var uid))
        {
            throw new PipelinesException($"Docker:User '{user}' is not numeric uid:gid, which warm containers need to own their folders", retryHelps: false);
        }

        var gid = parts.Length > 1 && uint.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var g) ? g : uid;
        if (LChown(path, uid, gid) != 0)
        {
            throw new PipelinesException($"cannot give {path} to {uid}:{gid}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())} (the engine runs warm containers as root)", retryHelps: false);
        }
    }

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LChown(string path, uint uid, uint gid);
}
