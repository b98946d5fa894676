using System.Net;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Pipelines.Containers;

/// <summary>The sweep of what dead workers left on a Docker engine (<see cref="DockerEngine"/>): their containers and their attempts' cgroups.</summary>
internal sealed class DockerSweep(DockerEngine engine) : IContainerSweep
{
    private readonly DockerEngine _engine = engine;
    private readonly DockerClient _client = engine.Client;
    private readonly DockerOptions _options = engine.Options;

    private IdleCgroup Idle => _engine.Idle;

    /// <summary>
    /// Removes the containers of ours whose owner is dead (<paramref name="isGone"/> judges the
    /// owner label): what a worker killed mid-step left, running or not. Containers of live
    /// workers, of other hosts and without an owner label are left alone. The empty attempt
    /// cgroups such a worker left go too (<see cref="CgroupMeter.RemoveLeftovers"/>).
    /// </summary>
    public async Task<int> RemoveLeftoversAsync(Func<string?, bool> isGone, CancellationToken cancellationToken)
    {
        var list = await ListOursAsync(cancellationToken).ConfigureAwait(false);
        var removed = 0;
        foreach (var c in list.Where(c => isGone(c.Labels is { } labels && labels.TryGetValue(ContainerLabels.Owner, out var owner) ? owner : null)))
        {
            try
            {
                await ThawAsync(c, cancellationToken).ConfigureAwait(false);
                await _client.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true }, cancellationToken).ConfigureAwait(false);
                removed++;
            }
            catch (DockerApiException e) when (e.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict)
            {
                // Removed meanwhile (by another worker's cleanup), or already being removed.
            }
            catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
            {
                throw _engine.Unreachable(e);
            }
        }

        if (CgroupMeter.Unmeasurable(Idle, _options.Endpoint) is null)
        {
            CgroupMeter.RemoveLeftovers(Idle, DateTime.UtcNow);
        }

        return removed;
    }

    /// <summary>
    /// A leftover its dead worker had suspended is thawed before it is removed: a task frozen in
    /// the v1 freezer does not die of the engine's SIGKILL until it thaws, so the removal would
    /// fail ("did not receive an exit event") and the container stay frozen for good. Thawed
    /// through its files in every freezer it is in (the worker froze it there, not the engine),
    /// and unpaused through the engine where the worker had to pause it so.
    /// </summary>
    private async Task ThawAsync(ContainerListResponse container, CancellationToken cancellationToken)
    {
        if (_options.Endpoint.StartsWith("unix://", StringComparison.Ordinal) && Idle.FindContainer(container.ID) is { } cgroup)
        {
            Idle.Hierarchy.Freeze(cgroup, frozen: false);
        }

        if (container.State == "paused")
        {
            try
            {
                await _client.Containers.UnpauseContainerAsync(container.ID, cancellationToken).ConfigureAwait(false);
            }
            catch (DockerApiException)
            {
                // Unpaused or gone meanwhile: the removal says the rest.
            }
        }
    }

    /// <summary>Every container of ours on the engine, of any process and in any state.</summary>
    private async Task<IList<ContainerListResponse>> ListOursAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _client.Containers.ListContainersAsync(
                new ContainersListParameters
                {
                    All = true,
                    Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [ContainerLabels.Managed + "=true"] = true } },
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            throw _engine.Unreachable(e);
        }
    }
}
