using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Containers.Cgroups;
using Pipelines.Model;

namespace Pipelines.Containers;

/// <summary>
/// Containers through the Docker Engine API: no network, a non-root user, a read-only root file
/// system, every capability dropped, no-new-privileges, cpu/memory/pids limits and a timeout
/// that kills. Each container carries the label <see cref="ManagedLabel"/> so that cleanup finds
/// only ours on a shared engine.
/// </summary>
public sealed class DockerRuntime : IContainerRuntime, Harvest.IContainerSuspender, IDisposable
{
    public const string ManagedLabel = "org.pipelines.managed";

    /// <summary>The label naming the process that made a container (<see cref="ProcessOwner"/>).</summary>
    public const string OwnerLabel = "org.pipelines.owner";

    private readonly DockerClient _client;
    private readonly DockerOptions _options;
    private readonly Lazy<IdleCgroup> _idle;
    private readonly SuspensionClock _suspended = new();
    private readonly ContainerFreezer _freezer;

    public DockerRuntime(DockerOptions options)
    {
        _options = options;

        // No API version is set on purpose: the client then sends unversioned URLs, which both
        // old engines (Debian's 20.10, API 1.41) and new ones accept.
        _client = new DockerClientBuilder().WithEndpoint(new Uri(options.Endpoint)).Build();

        // The parent's name follows the engine's cgroup driver, asked once, before the first container.
        _idle = new(() => IdleCgroup.Prepare(options.CgroupParent, options.Endpoint, options.IdleClass, () => CgroupDriver.Ask(_client, CgroupMounts.Machine, TimeSpan.FromSeconds(15))));
        _freezer = new(() => Idle);
    }

    public async Task<string> ResolveImageAsync(string image, CancellationToken cancellationToken)
    {
        try
        {
            var inspect = await _client.Images.InspectImageAsync(image, cancellationToken).ConfigureAwait(false);
            return inspect.ID;
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            throw new PipelinesException($"image '{image}' is not on the Docker engine at {_options.Endpoint}; build or load it there first (`docker images` lists what is there)", retryHelps: false, e);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TimeoutException or System.Net.Sockets.SocketException)
        {
            throw Unreachable(e);
        }
    }

    /// <summary>The size in bytes of an image on the engine (its layers, as `docker images` shows it).</summary>
    public async Task<long> ImageSizeAsync(string image, CancellationToken cancellationToken)
    {
        try
        {
            return (await _client.Images.InspectImageAsync(image, cancellationToken).ConfigureAwait(false)).Size;
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TimeoutException or System.Net.Sockets.SocketException)
        {
            throw Unreachable(e);
        }
    }

    /// <summary>Whether an image (by id or name) is on the engine.</summary>
    public async Task<bool> HasImageAsync(string image, CancellationToken cancellationToken)
    {
        try
        {
            await _client.Images.InspectImageAsync(image, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        catch (Exception e) when (IsConnectionFailure(e))
        {
            throw Unreachable(e);
        }
    }

    /// <summary>
    /// `docker load` through the engine API: the tarball is streamed to the engine, which reports
    /// a broken one in its progress messages rather than in the status code, so those are read too.
    /// </summary>
    public async Task LoadImageAsync(Stream tarball, CancellationToken cancellationToken)
    {
        var errors = new List<string>();
        try
        {
            await _client.Images.LoadImageAsync(
                new ImageLoadParameters { Quiet = true },
                tarball,
                new Progress<JSONMessage>(m =>
                {
                    if (m.Error?.Message is { Length: > 0 } error)
                    {
                        lock (errors)
                        {
                            errors.Add(error);
                        }
                    }
                }),
                cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.InternalServerError && !IsConnectionFailure(e))
        {
            throw new PipelinesException("the Docker engine refused the image tarball: " + e.ResponseBody?.Trim(), retryHelps: false, e);
        }
        catch (Exception e) when (IsConnectionFailure(e))
        {
            throw Unreachable(e);
        }

        lock (errors)
        {
            if (errors.Count > 0)
            {
                throw new PipelinesException("the Docker engine refused the image tarball: " + string.Join("; ", errors), retryHelps: false);
            }
        }
    }

    /// <summary>`docker save` of one image through the engine API, streamed into <paramref name="destination"/>.</summary>
    public async Task SaveImageAsync(string image, Stream destination, CancellationToken cancellationToken)
    {
        try
        {
            await using var tar = await _client.Images.SaveImageAsync(image, cancellationToken).ConfigureAwait(false);
            await tar.CopyToAsync(destination, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            throw new PipelinesException($"image '{image}' is not on the Docker engine at {_options.Endpoint} (`docker images` lists what is there)", retryHelps: false, e);
        }
        catch (Exception e) when (IsConnectionFailure(e))
        {
            throw Unreachable(e);
        }
    }

    /// <summary>`docker pull` through the engine API, with the registry's credentials when given.</summary>
    public async Task PullImageAsync(string reference, AuthConfig? auth, CancellationToken cancellationToken)
    {
        var errors = new List<string>();
        // By digest the whole reference is pulled; else the repository at its tag (latest when none).
        var parsed = ImageReference.Parse(reference);
        var (from, tag) = parsed.Digest is not null ? (reference, (string?)null) : (parsed.Repository, parsed.Tag ?? "latest");
        try
        {
            await _client.Images.CreateImageAsync(
                new ImagesCreateParameters { FromImage = from, Tag = tag },
                auth ?? new AuthConfig(),
                new Progress<JSONMessage>(m =>
                {
                    if (m.Error?.Message is { Length: > 0 } error)
                    {
                        lock (errors)
                        {
                            errors.Add(error);
                        }
                    }
                }),
                cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (!IsConnectionFailure(e))
        {
            // The engine answers 500 for a registry out of reach (waited out) and for a refusal
            // by a registry that answered (credentials, a missing repository or tag: not).
            var refused = e.ResponseBody is { } body && RegistryRefusals.Any(r => body.Contains(r, StringComparison.OrdinalIgnoreCase));
            throw new PipelinesException($"the Docker engine could not pull {reference}: {e.ResponseBody?.Trim()}", retryHelps: e.StatusCode >= HttpStatusCode.InternalServerError && !refused, e);
        }
        catch (Exception e) when (IsConnectionFailure(e))
        {
            throw Unreachable(e);
        }

        lock (errors)
        {
            if (errors.Count > 0)
            {
                throw new PipelinesException($"the Docker engine could not pull {reference}: {string.Join("; ", errors)}", retryHelps: false);
            }
        }
    }

    /// <summary>What a registry that answered says when it refuses a pull (distribution's error codes and the engine's own words).</summary>
    private static readonly string[] RegistryRefusals =
        ["unauthorized", "authentication required", "no basic auth credentials", "denied", "manifest unknown", "name unknown", "not found", "invalid reference format"];

    /// <summary>Whether the engine answers; for readiness checks.</summary>
    public async Task PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _client.System.PingAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TimeoutException or System.Net.Sockets.SocketException or DockerApiException)
        {
            throw Unreachable(e);
        }
    }

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
        var parameters = LockedDown(
            spec.ImageId,
            spec.Command,
            spec.Env.Concat(spec.Secrets),
            spec.Mounts.Select(m => $"{m.HostPath}:{m.ContainerPath}:{(m.ReadOnly ? "ro" : "rw")}").ToList(),
            spec.Resources,
            spec.Labels,
            cgroup?.Engine);

        string id;
        try
        {
            id = (await _client.Containers.CreateContainerAsync(parameters, cancellationToken).ConfigureAwait(false)).ID;
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            throw new PipelinesException($"image {spec.ImageId} is no longer on the Docker engine", retryHelps: false, e);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or System.Net.Sockets.SocketException)
        {
            throw Unreachable(e);
        }

        var clock = Stopwatch.StartNew();
        try
        {
            await StartAsync(id, cgroup, cancellationToken).ConfigureAwait(false);
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
                await KillQuietlyAsync(id).ConfigureAwait(false);
                exitCode = (await _client.Containers.WaitContainerAsync(id, CancellationToken.None).ConfigureAwait(false)).StatusCode;
            }

            var wall = clock.Elapsed;
            var state = (await _client.Containers.InspectContainerAsync(id, CancellationToken.None).ConfigureAwait(false)).State;
            var log = Mask(await ReadLogsAsync(id).ConfigureAwait(false), spec.Secrets);
            return new ContainerResult(exitCode, timedOut, state?.OOMKilled == true, log, wall);
        }
        catch (OperationCanceledException e) when (e is not ContainerStoppedException)
        {
            // Stopped by the caller (a vacate, a cancel, a shutdown): do not leave it running, and
            // keep what it printed until now for the step's log.
            await KillQuietlyAsync(id).ConfigureAwait(false);
            throw new ContainerStoppedException(await StoppedLogAsync(id, spec.Secrets).ConfigureAwait(false), cancellationToken);
        }
        catch (Exception e) when (IsConnectionFailure(e))
        {
            // The engine went away while the step ran (a restart, a crash): an outage, not the
            // algorithm's failure; the attempt is run again once the engine answers.
            throw Unreachable(e);
        }
        finally
        {
            await RemoveQuietlyAsync(id).ConfigureAwait(false);
        }
    }

    /// <summary>The one Docker client of this runtime, shared by the warm pool.</summary>
    internal DockerClient Client => _client;

    internal DockerOptions Options => _options;

    /// <summary>The time this runtime's containers were held suspended, which no timeout counts (<see cref="RunTimeout"/>).</summary>
    internal SuspensionClock Suspensions => _suspended;

    /// <summary>
    /// A container's parameters under the lock-down every container of ours gets, one-shot or
    /// warm: no network, the non-root user, a read-only root, no capabilities, no-new-privileges,
    /// memory without swap, cpu, pids, cpu shares, a small /tmp tmpfs, a capped json log and the
    /// labels that let cleanup find it, under our cgroup parent (or <paramref name="cgroup"/> in it).
    /// An empty <paramref name="command"/> keeps the image's entrypoint.
    /// </summary>
    internal CreateContainerParameters LockedDown(string imageId, IReadOnlyList<string> command, IEnumerable<KeyValuePair<string, string>> env, IList<string> binds, Model.Resources resources, IReadOnlyDictionary<string, string> labels, string? cgroup = null) => new()
    {
        Image = imageId,
        // null, not empty: Docker then keeps the image's own entrypoint and command.
        Entrypoint = command.Count > 0 ? [command[0]] : null!,
        Cmd = command.Count > 0 ? command.Skip(1).ToList() : null!,
        Env = env.Select(kv => $"{kv.Key}={kv.Value}").ToList(),
        User = _options.User,
        WorkingDir = ContainerLayout.Out,
        Labels = new Dictionary<string, string>(labels) { [ManagedLabel] = "true", [OwnerLabel] = ProcessOwner.Current },
        NetworkDisabled = true,
        HostConfig = new HostConfig
        {
            NetworkMode = "none",
            ReadonlyRootfs = true,
            CapDrop = ["ALL"],
            SecurityOpt = ["no-new-privileges"],
            Memory = resources.MemoryBytes,
            MemorySwap = resources.MemoryBytes,
            NanoCPUs = (long)(resources.Cpus * 1_000_000_000),
            PidsLimit = resources.Pids,
            CPUShares = _options.CpuShares,
            // As the engine's cgroup driver takes it: a slice under systemd, else a path from the
            // root of each hierarchy, where IdleCgroup makes it (a relative parent is taken by
            // runc from its own cgroup of each controller, which need not be the root).
            CgroupParent = cgroup ?? Idle.EngineParent!,
            Binds = binds,
            Tmpfs = new Dictionary<string, string> { [ContainerLayout.Tmp] = $"rw,noexec,nosuid,size={_options.TmpSize}" },
            LogConfig = new LogConfig
            {
                Type = "json-file",

                // Two files: Docker 20.10 reads back only about 1 MB of a 10m log with max-file 1.
                Config = new Dictionary<string, string> { ["max-size"] = _options.LogMaxSize, ["max-file"] = "2" },
            },
        },
    };

    internal static bool IsConnectionFailure(Exception e) =>
        e is HttpRequestException or IOException or System.Net.Sockets.SocketException or TimeoutException
        || (e is DockerApiException { StatusCode: HttpStatusCode.InternalServerError or HttpStatusCode.ServiceUnavailable } && e.Message.Contains("shutting down", StringComparison.OrdinalIgnoreCase));

    internal async Task RemoveQuietlyAsync(string id)
    {
        try
        {
            await _client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            // Already gone: nothing to clean.
        }
        catch (Exception e) when (IsConnectionFailure(e) || e is DockerApiException)
        {
            // The engine is out of reach: the container is left with our labels, and the
            // cleanup of leftovers removes it once the engine is back.
        }
        finally
        {
            _freezer.Ended(id);
        }
    }

    /// <summary>
    /// Starts a created container of ours (under our parent, or in <paramref name="attempt"/>'s
    /// cgroup there) and hands it to the freezer, which freezes it at once while this runtime's
    /// containers are suspended.
    /// </summary>
    internal async Task StartAsync(string id, CgroupMeter.Attempt? attempt, CancellationToken cancellationToken)
    {
        await _client.Containers.StartContainerAsync(id, new ContainerStartParameters(), cancellationToken).ConfigureAwait(false);
        var cgroup = attempt is not null ? Idle.Driver.ContainerCgroup(attempt.Path, id) : Idle.Parent.Length > 0 ? Idle.ContainerCgroup(id) : null;
        if (_freezer.Started(id, cgroup))
        {
            await PauseQuietlyAsync(id).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Removes the containers of ours whose owner is dead (<paramref name="isGone"/> judges the
    /// owner label): what a worker killed mid-step left, running or not. Containers of live
    /// workers, of other hosts and without an owner label are left alone. The empty attempt
    /// cgroups such a worker left go too (<see cref="CgroupMeter.RemoveLeftovers"/>).
    /// </summary>
    public async Task<int> RemoveLeftoversAsync(Func<string?, bool> isGone, CancellationToken cancellationToken)
    {
        var list = await _client.Containers.ListContainersAsync(
            new ContainersListParameters
            {
                All = true,
                Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [ManagedLabel + "=true"] = true } },
            },
            cancellationToken).ConfigureAwait(false);
        var removed = 0;
        foreach (var c in list.Where(c => isGone(c.Labels is { } labels && labels.TryGetValue(OwnerLabel, out var owner) ? owner : null)))
        {
            try
            {
                await _client.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true }, cancellationToken).ConfigureAwait(false);
                removed++;
            }
            catch (DockerApiException e) when (e.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict)
            {
                // Removed meanwhile (by another worker's cleanup), or already being removed.
            }
        }

        if (CgroupMeter.Unmeasurable(Idle, _options.Endpoint) is null)
        {
            CgroupMeter.RemoveLeftovers(Idle, DateTime.UtcNow);
        }

        return removed;
    }

    /// <summary>The cgroup parent of our containers and its CPU class, made before the first container.</summary>
    public IdleCgroup Idle => _idle.Value;

    /// <summary>Suspends this runtime's containers through their freezer files (<see cref="ContainerFreezer"/>), `docker pause` where those are not ours to write.</summary>
    public async Task<int> SuspendAllAsync(CancellationToken cancellationToken)
    {
        _suspended.Suspended();
        var (frozen, toPause) = _freezer.Suspend();
        foreach (var id in toPause)
        {
            frozen += await PauseQuietlyAsync(id).ConfigureAwait(false) ? 1 : 0;
        }

        return frozen;
    }

    public async Task<int> ResumeAllAsync(CancellationToken cancellationToken)
    {
        var (resumed, toUnpause) = _freezer.Resume();
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
        }

        _suspended.Resumed();
        return resumed;
    }

    /// <summary>The own cgroup of a live container of this runtime (a path from the root of each hierarchy); null when its files are not ours.</summary>
    internal string? CgroupOf(string id) => _freezer.CgroupOf(id);

    private async Task<bool> PauseQuietlyAsync(string id)
    {
        try
        {
            await _client.Containers.PauseContainerAsync(id, CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (DockerApiException e) when (e.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict or HttpStatusCode.InternalServerError)
        {
            // It ended meanwhile, or runc gave up ("unable to freeze"): it runs on, at its weight.
            return false;
        }
    }

    public void Dispose() => _client.Dispose();

    /// <summary>A step that prints a secret does not get it kept: its log, which is stored and shown, has *** instead.</summary>
    internal static string Mask(string log, IReadOnlyDictionary<string, string> secrets)
    {
        foreach (var value in secrets.Values.Where(v => v.Length > 0).OrderByDescending(v => v.Length))
        {
            log = log.Replace(value, "***", StringComparison.Ordinal);
        }

        return log;
    }

    internal async Task KillQuietlyAsync(string id)
    {
        _freezer.Kill(id);
        try
        {
            await _client.Containers.KillContainerAsync(id, new ContainerKillParameters { Signal = "KILL" }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (DockerApiException)
        {
            // It ended by itself between the timeout and the kill.
        }
    }

    private Task<string> ReadLogsAsync(string id) => ReadLogsAsync(id, _options.MaxLogBytes);

    /// <summary>A stopped container's output, or a note where the engine cannot give it.</summary>
    private async Task<string> StoppedLogAsync(string id, IReadOnlyDictionary<string, string> secrets)
    {
        try
        {
            return Mask(await ReadLogsAsync(id).ConfigureAwait(false), secrets);
        }
        catch (Exception e) when (IsConnectionFailure(e) || e is DockerApiException)
        {
            return $"[pipelines: the container's output could not be read: {e.Message}]\n";
        }
    }

    /// <summary>A container's stdout and stderr as they came, at most <paramref name="maxBytes"/> (the first and last halves).</summary>
    internal async Task<string> ReadLogsAsync(string id, int maxBytes)
    {
        using var stream = await _client.Containers.GetContainerLogsAsync(
            id,
            new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Follow = false },
            CancellationToken.None).ConfigureAwait(false);

        // The head and the tail are kept (an error is usually at the end), the middle is cut and said.
        var half = Math.Max(1, maxBytes / 2);
        var head = new MemoryStream();
        var tail = new byte[half];
        long tailCount = 0;
        var buffer = new byte[16384];
        long total = 0;
        while (true)
        {
            var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, CancellationToken.None).ConfigureAwait(false);
            if (read.EOF)
            {
                break;
            }

            var toHead = (int)Math.Clamp(half - total, 0, read.Count);
            head.Write(buffer, 0, toHead);
            for (var i = toHead; i < read.Count; i++)
            {
                tail[tailCount++ % half] = buffer[i];
            }

            total += read.Count;
        }

        var text = new StringBuilder(Encoding.UTF8.GetString(head.GetBuffer(), 0, (int)head.Length));
        if (tailCount > half)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n[pipelines: log cut: the first and last {half} of {total} bytes are kept]\n");
        }

        var start = tailCount > half ? (int)(tailCount % half) : 0;
        var count = (int)Math.Min(tailCount, half);
        var ordered = new byte[count];
        for (var i = 0; i < count; i++)
        {
            ordered[i] = tail[(start + i) % half];
        }

        return text.Append(Encoding.UTF8.GetString(ordered)).ToString();
    }

    internal PipelinesException Unreachable(Exception e)
    {
        var socket = _options.Endpoint.StartsWith("unix://", StringComparison.Ordinal) ? _options.Endpoint["unix://".Length..] : null;
        var why = socket is not null && !File.Exists(socket)
            ? $"there is no socket at {socket}"
            : e.GetBaseException().Message;
        return new($"cannot reach the Docker engine at {_options.Endpoint}: {why} (is dockerd running? the endpoint is DOCKER_HOST or Docker:Endpoint)", retryHelps: true, e);
    }
}
