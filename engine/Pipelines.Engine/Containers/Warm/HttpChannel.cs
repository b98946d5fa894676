using System.Net.Sockets;

namespace Pipelines.Containers.Warm;

/// <summary>HTTP to an http-mode container's server on its Unix socket: the container has no network.</summary>
internal static class HttpChannel
{
    /// <summary>The authority every request is sent to; the socket, not the name, says where it goes.</summary>
    public static readonly Uri BaseAddress = new("http://warm.pipelines/");

    public static HttpClient Create(string socketPath, int concurrency)
    {
        var endpoint = new UnixDomainSocketEndPoint(socketPath);
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            MaxConnectionsPerServer = concurrency,
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
        };
        return new HttpClient(handler) { BaseAddress = BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
    }
}
