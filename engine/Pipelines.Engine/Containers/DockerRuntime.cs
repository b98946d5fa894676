using System.Diagnostics;
using System.Net;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Pipelines.Containers;

/// <summary>
/// A container per run on a Docker engine (<see cref="DockerEngine"/>): created under the
/// lock-down every container of ours gets, started, waited for under a timeout that kills (the
/// time held suspended is not counted), its log read and masked, an OOM kill read from its state,
/// what it used read from its attempt's cgroup (<see cref="CgroupMeter"/>), and removed in every case.
/// </summary>
internal sealed class DockerRuntime : IContainerRuntime
{
    private readonly DockerEngine _engine;
    private readonly DockerClient _client;
    private readonly DockerOptions _options;
    private readonly SuspensionClock _suspended;

    public DockerRuntime(DockerEngine engine)
    {
        _engine = engine;
        _client = engine.Client;
        _options = engine.Options;
        _suspended = engine.Suspensions;
    }

    private IdleCgroup Idle => _engine.Idle;

    public Task<string> ResolveImageAsync(string image, CancellationToken cancellationToken) => _engine.Images.ResolveImageAsync(image, cancellationToken);

    public async Task<ContainerResult> RunAsync(ContainerSpec spec, CancellationToken cancellationToken)
    {
        // The container's own cgroup goes when it exits: it runs under a cgroup of this attempt,
        // whose counters keep what it used until they are read, after the container is removed.
        var unmeasurable = CgroupMeter.Unmeasurable(Idle, _options.Endpoint);
        var attempt = unmeasurable is null ? CgroupMeter.NewAttempt(Idle) : null;
        try
        {
            var result = await RunUnderAsync(spec, attempt, cancellationToken).ConfigureAwait(false);
            if (attempt is null)
            {
                return CgroupMeter.Measured(result, null, unmeasurable);
            }

            var reading = Idle.Hierarchy.Read(attempt.Path);
            var removed = CgroupMeter.Remove(Idle, attempt);
            attempt = null;
            return CgroupMeter.Measured(result, reading, null, removed);
        }
        finally
        {
            if (attempt is not null)
            {
                CgroupMeter.Remove(Idle, attempt);
            }
        }
    }

    /// <summary>One container's run under <paramref name="cgroup"/> (null: our parent), removed at the end in every case.</summary>
    private async Task<ContainerResult> RunUnderAsync(ContainerSpec spec, CgroupMeter.Attempt? cgroup, CancellationToken cancellationToken)
    {
        var parameters = _engine.LockedDown(spec, cgroup?.Engine);

        string id;
        var starting = Stopwatch.StartNew();
        try
        {
            id = await _engine.CreateAsync(parameters, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            throw new PipelinesException($"image {spec.ImageId} is no longer on the Docker engine", retryHelps: false, e);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or System.Net.Sockets.SocketException)
        {
            throw _engine.Unreachable(e);
        }
        catch (DockerApiException e) when (_engine.ParentRefused(e, parameters.HostConfig?.CgroupParent) is { } refused)
        {
            throw refused;
        }

        var clock = Stopwatch.StartNew();
        try
        {
            await _engine.StartAsync(id, cgroup, cancellationToken).ConfigureAwait(false);
            Telemetry.EngineMetrics.ContainerStarted("oneshot", starting.Elapsed.TotalSeconds);
            var timedOut = false;
            long exitCode;

            // The timeout counts the time the step could run: time held suspended by the harvester is not counted.
            using var timeout = new RunTimeout(_suspended, spec.Resources.Timeout);
            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Expired);
            try
            {
                exitCode = (await _client.Containers.WaitContainerAsync(id, waiting.Token).ConfigureAwait(false)).StatusCode;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && timeout.Expired.IsCancellationRequested)
            {
                timedOut = true;
                await _engine.KillQuietlyAsync(id).ConfigureAwait(false);
                exitCode = (await _client.Containers.WaitContainerAsync(id, CancellationToken.None).ConfigureAwait(false)).StatusCode;
            }

            var wall = clock.Elapsed;
            var state = (await _client.Containers.InspectContainerAsync(id, CancellationToken.None).ConfigureAwait(false)).State;
            var log = LogMask.Apply(await _engine.ReadLogsAsync(id, _options.MaxLogBytes, CancellationToken.None).ConfigureAwait(false), spec.Secrets);
            return new ContainerResult(exitCode, timedOut, state?.OOMKilled == true, log, wall);
        }
        catch (OperationCanceledException e) when (e is not ContainerStoppedException)
        {
            // Stopped by the caller (a vacate, a cancel, a shutdown): do not leave it running, and
            // keep what it printed until now for the step's log.
            await _engine.KillQuietlyAsync(id).ConfigureAwait(false);
            throw new ContainerStoppedException(await StoppedLogAsync(id, spec.Secrets).ConfigureAwait(false), cancellationToken);
        }
        catch (DockerApiException e) when (_engine.ParentRefused(e, parameters.HostConfig?.CgroupParent) is { } refused)
        {
            throw refused;
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            // The engine went away while the step ran (a restart, a crash): an outage, not the
            // algorithm's failure; the attempt is run again once the engine answers.
            throw _engine.Unreachable(e);
        }
        finally
        {
            await _engine.RemoveQuietlyAsync(id).ConfigureAwait(false);
        }
    }

    /// <summary>A stopped container's output, or a note where the engine cannot give it.</summary>
    private async Task<string> StoppedLogAsync(string id, IReadOnlyDictionary<string, string> secrets)
    {
        try
        {
            return LogMask.Apply(await _engine.ReadLogsAsync(id, _options.MaxLogBytes, CancellationToken.None).ConfigureAwait(false), secrets);
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e) || e is DockerApiException)
        {
            return $"[pipelines: the container's output could not be read: {e.Message}]\n";
        }
    }
}
