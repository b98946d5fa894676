using Docker.DotNet;

namespace Pipelines.Containers;

/// <summary>Whether a Docker engine (<see cref="DockerEngine"/>) answers its ping.</summary>
internal sealed class DockerLiveness(DockerEngine engine) : IEngineLiveness
{
    private readonly DockerEngine _engine = engine;

    public async Task PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _engine.Client.System.PingAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TimeoutException or System.Net.Sockets.SocketException or DockerApiException)
        {
            throw _engine.Unreachable(e);
        }
    }
}
