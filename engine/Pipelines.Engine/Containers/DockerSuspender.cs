using System.Net;
using Docker.DotNet;
using Pipelines.Containers.Cgroups;

namespace Pipelines.Containers;

/// <summary>
/// Suspend and resume of this engine's containers on a Docker engine (<see cref="DockerEngine"/>):
/// through each container's own freezer files (<see cref="ContainerFreezer"/>: not `docker
/// pause`, whose wait for the freeze failed and cost a busy owner meanwhile), `docker pause` only
/// where those files are not ours to write, and the time held counted on the engine's
/// <see cref="SuspensionClock"/>.
/// </summary>
internal sealed class DockerSuspender(DockerEngine engine) : IContainerSuspender
{
    private readonly DockerEngine _engine = engine;
    private readonly DockerClient _client = engine.Client;
    private readonly SuspensionClock _suspended = engine.Suspensions;

    public async Task<int> SuspendAllAsync(CancellationToken cancellationToken)
    {
        _suspended.Suspended();
        var (frozen, toPause) = _engine.Freezer.Suspend();
        foreach (var id in toPause)
        {
            frozen += await _engine.PauseQuietlyAsync(id).ConfigureAwait(false) ? 1 : 0;
        }

        return frozen;
    }

    public async Task<int> ResumeAllAsync(CancellationToken cancellationToken)
    {
        var (resumed, toUnpause) = _engine.Freezer.Resume();
        foreach (var id in toUnpause)
        {
            try
            {
                await _client.Containers.UnpauseContainerAsync(id, CancellationToken.None).ConfigureAwait(false);
                resumed++;
            }
            catch (DockerApiException e) when (e.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict)
            {
                // It ended, or its pause had failed.
            }
            catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
            {
                throw _engine.Unreachable(e);
            }
        }

        _suspended.Resumed();
        return resumed;
    }
}
