using System.Net;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Pipelines.Containers;

/// <summary>
/// Long-lived containers on a Docker engine (<see cref="DockerEngine"/>), for the warm pool: each
/// created under the lock-down every container of ours gets (<see cref="DockerEngine.LockedDown"/>)
/// and directly under our cgroup parent, where its own cgroup's counters measure it.
/// </summary>
internal sealed class DockerContainers(DockerEngine engine) : ILongLivedContainers
{
    private readonly DockerEngine _engine = engine;
    private readonly DockerClient _client = engine.Client;

    public SuspensionClock Suspensions => _engine.Suspensions;

    public string? Unmeasurable => CgroupMeter.Unmeasurable(_engine.Idle, _engine.Options.Endpoint);

    public string CgroupOf(string id) => _engine.Idle.ContainerCgroup(id);

    public async Task<string> StartAsync(ContainerSpec spec, CancellationToken cancellationToken)
    {
        var parameters = _engine.LockedDown(spec);
        string id;
        try
        {
            id = await _engine.CreateAsync(parameters, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            throw new PipelinesException($"image {spec.ImageId} is not on the Docker engine", retryHelps: false, e);
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            throw _engine.Unreachable(e);
        }
        catch (DockerApiException e) when (_engine.ParentRefused(e, parameters.HostConfig?.CgroupParent) is { } refused)
        {
            throw refused;
        }
        catch (DockerApiException e)
        {
            throw Refused("create", spec, e);
        }

        try
        {
            await _engine.StartAsync(id, attempt: null, cancellationToken).ConfigureAwait(false);
            return id;
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            await _engine.RemoveQuietlyAsync(id).ConfigureAwait(false);
            throw _engine.Unreachable(e);
        }
        catch (DockerApiException e)
        {
            await _engine.RemoveQuietlyAsync(id).ConfigureAwait(false);
            throw _engine.ParentRefused(e, parameters.HostConfig?.CgroupParent) ?? Refused("start", spec, e);
        }
        catch
        {
            await _engine.RemoveQuietlyAsync(id).ConfigureAwait(false);
            throw;
        }
    }

    public async Task<long> WaitAsync(string id, CancellationToken cancellationToken)
    {
        try
        {
            return (await _client.Containers.WaitContainerAsync(id, cancellationToken).ConfigureAwait(false)).StatusCode;
        }
        catch (Exception e) when (Translate(id, e) is { } said)
        {
            throw said;
        }
    }

    public async Task KillAsync(string id)
    {
        try
        {
            await _engine.KillQuietlyAsync(id).ConfigureAwait(false);
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            throw _engine.Unreachable(e);
        }
    }

    public Task RemoveAsync(string id) => _engine.RemoveQuietlyAsync(id);

    public async Task<string> ReadLogAsync(string id, int maxBytes, CancellationToken cancellationToken)
    {
        try
        {
            return await _engine.ReadLogsAsync(id, maxBytes, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (Translate(id, e) is { } said)
        {
            throw said;
        }
    }

    public async Task<ContainerInfo?> InspectAsync(string id, CancellationToken cancellationToken)
    {
        ContainerInspectResponse c;
        try
        {
            c = await _client.Containers.InspectContainerAsync(id, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (Exception e) when (Translate(id, e) is { } said)
        {
            throw said;
        }

        var state = c.State;
        var host = c.HostConfig;
        return new ContainerInfo(
            c.ID,
            state is null ? ContainerRunState.Exited
                : state.Paused || (state.Running && _engine.Freezer.Holds(id)) ? ContainerRunState.Paused
                : state.Running ? ContainerRunState.Running
                : state.Status == "created" ? ContainerRunState.Created
                : ContainerRunState.Exited,
            state is { Running: false, Status: not "created" } ? state.ExitCode : null,
            state?.OOMKilled == true,
            c.Config?.Labels is { } labels ? new Dictionary<string, string>(labels) : [],
            new ContainerLockDown(
                c.Config?.User ?? "",
                host?.NetworkMode ?? "",
                host?.ReadonlyRootfs == true,
                host?.CapDrop is { } dropped ? [.. dropped] : [],
                host?.SecurityOpt?.Contains("no-new-privileges") == true,
                host?.Memory ?? 0,
                (host?.NanoCPUs ?? 0) / 1e9,
                host?.PidsLimit));
    }

    /// <summary>What a verb on one container says when the engine fails it: out of reach (retried), or no such container; null for anything else.</summary>
    private PipelinesException? Translate(string id, Exception e) => e switch
    {
        _ when DockerEngine.IsConnectionFailure(e) => _engine.Unreachable(e),
        DockerApiException { StatusCode: HttpStatusCode.NotFound } => new PipelinesException($"there is no container {id} on the Docker engine at {_engine.Options.Endpoint}", retryHelps: false, e),
        DockerApiException api => new PipelinesException($"the Docker engine refused the container {id}: {api.ResponseBody?.Trim()}", retryHelps: false, e),
        _ => null,
    };

    private static PipelinesException Refused(string verb, ContainerSpec spec, DockerApiException e) =>
        new($"the Docker engine could not {verb} a container of image {spec.ImageId}: {e.ResponseBody?.Trim()}", retryHelps: false, e);
}
