using System.Net;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Pipelines.Containers;

/// <summary>
/// Suspend and resume of this process's containers on a Docker engine (<see cref="DockerEngine"/>):
/// `docker pause`, with the kernel's freezer asked directly where runc gives up, and the time held
/// counted on the engine's <see cref="SuspensionClock"/>.
/// </summary>
internal sealed class DockerSuspender(DockerEngine engine) : IContainerSuspender
{
    private readonly DockerEngine _engine = engine;
    private readonly DockerClient _client = engine.Client;
    private readonly SuspensionClock _suspended = engine.Suspensions;

    private IdleCgroup Idle => _engine.Idle;

    public Task<int> SuspendAllAsync(CancellationToken cancellationToken)
    {
        _suspended.Suspended();
        return ForEachOursAsync("running", async id =>
        {
            try
            {
                await _client.Containers.PauseContainerAsync(id, cancellationToken).ConfigureAwait(false);
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.InternalServerError && Idle.Parent.Length > 0)
            {
                // runc gives up ("unable to freeze") when a task does not reach the freezer in
                // time, as a task of the idle class on a machine kept busy may not: the freeze is
                // asked of the kernel directly, which completes it when the task next runs.
                if (!IdleCgroup.Freeze(Idle.Parent, id, frozen: true))
                {
                    throw;
                }
            }
        }, cancellationToken);
    }

    public async Task<int> ResumeAllAsync(CancellationToken cancellationToken)
    {
        var thawed = await ForEachOursAsync("running", id => Task.FromResult(Idle.Parent.Length > 0 && IdleCgroup.Freeze(Idle.Parent, id, frozen: false)), cancellationToken).ConfigureAwait(false);
        var resumed = thawed + await ForEachOursAsync("paused", async id =>
        {
            await _client.Containers.UnpauseContainerAsync(id, cancellationToken).ConfigureAwait(false);
            return true;
        }, cancellationToken).ConfigureAwait(false);
        _suspended.Resumed();
        return resumed;
    }

    /// <summary>Acts on this process's containers in <paramref name="status"/>; one that ended meanwhile is skipped.</summary>
    private Task<int> ForEachOursAsync(string status, Func<string, Task> act, CancellationToken cancellationToken) =>
        ForEachOursAsync(
            status,
            async id =>
            {
                await act(id).ConfigureAwait(false);
                return true;
            },
            cancellationToken);

    private async Task<int> ForEachOursAsync(string status, Func<string, Task<bool>> act, CancellationToken cancellationToken)
    {
        var list = await ListAsync(status, cancellationToken).ConfigureAwait(false);
        var done = 0;
        foreach (var c in list)
        {
            try
            {
                done += await act(c.ID).ConfigureAwait(false) ? 1 : 0;
            }
            catch (DockerApiException e) when (e.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict)
            {
                // It ended, or changed state, between the listing and now.
            }
            catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
            {
                throw _engine.Unreachable(e);
            }
        }

        return done;
    }

    /// <summary>This process's containers in <paramref name="status"/>.</summary>
    private async Task<IList<ContainerListResponse>> ListAsync(string status, CancellationToken cancellationToken)
    {
        try
        {
            return await _client.Containers.ListContainersAsync(
                new ContainersListParameters
                {
                    Filters = new Dictionary<string, IDictionary<string, bool>>
                    {
                        ["label"] = new Dictionary<string, bool> { [$"{ContainerLabels.Owner}={ProcessOwner.Current}"] = true },
                        ["status"] = new Dictionary<string, bool> { [status] = true },
                    },
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            throw _engine.Unreachable(e);
        }
    }
}
