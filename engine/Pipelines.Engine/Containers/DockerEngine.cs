using System.Globalization;
using System.Net;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Containers.Cgroups;
using Pipelines.Model;

namespace Pipelines.Containers;

/// <summary>
/// One Docker engine and every container seam over it: <see cref="Runtime"/> (a container per
/// run), <see cref="Images"/>, <see cref="Containers"/> (long-lived ones, for the warm pool),
/// <see cref="Suspender"/>, <see cref="Sweep"/> and <see cref="Liveness"/>, each a small class of
/// its own. It holds what they share: the one Docker client of the process, the cgroup parent our
/// containers run under, the clock of the time they were held suspended, and the lock-down every
/// container of ours gets (<see cref="LockedDown"/>). Outside Containers/ only the host's wiring
/// (Hosting/EngineHost.AddContainers) names it: a second runtime is a class beside this one.
/// </summary>
public sealed partial class DockerEngine : IDisposable
{
    private readonly DockerClient _client;
    private readonly DockerOptions _options;
    private readonly Lazy<IdleCgroup> _idle;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Lock _idleLock = new();

    // The parent and class as known now, where they changed since the first: the engine's
    // cgroup driver asked again, or the class read from a slice systemd made since.
    private IdleCgroup? _current;
    private DateTimeOffset _askAgainAt;

    public DockerEngine(DockerOptions options, TimeProvider? time = null, ILogger<DockerEngine>? log = null)
    {
        _options = options;
        _time = time ?? TimeProvider.System;
        _log = log ?? NullLogger<DockerEngine>.Instance;

        // No API version is set on purpose: the client then sends unversioned URLs, which both
        // old engines (Debian's 20.10, API 1.41) and new ones accept.
        _client = new DockerClientBuilder().WithEndpoint(new Uri(options.Endpoint)).WithTimeout(options.RequestTimeout).Build();

        // The parent's name follows the engine's cgroup driver, asked before the first container;
        // a driver assumed because the engine did not say is asked again (Idle).
        _idle = new(() => Prepare(DriverPatience));
        Freezer = new(() => Idle);
        Images = new DockerImages(this);
        Runtime = new DockerRuntime(this);
        Containers = new DockerContainers(this);
        Suspender = new DockerSuspender(this);
        Sweep = new DockerSweep(this);
        Liveness = new DockerLiveness(this);
    }

    /// <summary>A container per run: created, started, waited for, read and removed.</summary>
    public IContainerRuntime Runtime { get; }

    public IContainerImages Images { get; }

    /// <summary>Long-lived containers, for the warm pool.</summary>
    public ILongLivedContainers Containers { get; }

    internal IContainerSuspender Suspender { get; }

    internal IContainerSweep Sweep { get; }

    public IEngineLiveness Liveness { get; }

    /// <summary>
    /// The cgroup parent of our containers and its CPU class, made before the first container.
    /// Where the engine did not say which cgroup driver it uses (slow, or out of reach), the one
    /// assumed is not kept for good: the engine is asked again at most every
    /// <see cref="AskAgainEvery"/> (and at once after it refused a parent), and the parent named
    /// again from its answer, since on a systemd engine a parent named for cgroupfs fails every container.
    /// </summary>
    public IdleCgroup Idle
    {
        get
        {
            var idle = Volatile.Read(ref _current) ?? _idle.Value;
            if (!idle.Driver.Assumed || _time.GetUtcNow() < _askAgainAt)
            {
                return idle;
            }

            lock (_idleLock)
            {
                idle = _current ?? _idle.Value;
                if (idle.Driver.Assumed && _time.GetUtcNow() >= _askAgainAt)
                {
                    _askAgainAt = _time.GetUtcNow() + AskAgainEvery;
                    var asked = Prepare(AskAgainPatience);
                    if (!asked.Driver.Assumed)
                    {
                        Volatile.Write(ref _current, idle = asked);
                    }
                }

                return idle;
            }
        }
    }

    /// <summary>How long the engine is given to say its cgroup driver before the first container.</summary>
    internal static readonly TimeSpan DriverPatience = TimeSpan.FromSeconds(15);

    /// <summary>How often a driver that was assumed is asked again, and how long the engine is given then.</summary>
    internal static readonly TimeSpan AskAgainEvery = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan AskAgainPatience = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The CPU class again where it comes from a slice systemd makes (<see cref="IdleCgroup.Reread"/>):
    /// after each container start, and at the harvester's admissions and rounds.
    /// </summary>
    public IdleCgroup RereadIdleClass()
    {
        var idle = Idle;
        var now = idle.Reread();
        if (now.Mode != idle.Mode)
        {
            lock (_idleLock)
            {
                Volatile.Write(ref _current, now);
            }
        }

        return now;
    }

    /// <summary>
    /// Where the engine refused a container for its cgroup parent: an error that names the parent
    /// and the driver it was named for (and why that driver was assumed, where it was); an assumed
    /// driver is asked again before the next container. Null for any other refusal.
    /// </summary>
    internal PipelinesException? ParentRefused(DockerApiException e, string? parent)
    {
        if (parent is null || !e.Message.Contains("cgroup", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var driver = Idle.Driver;
        if (driver.Assumed)
        {
            lock (_idleLock)
            {
                _askAgainAt = DateTimeOffset.MinValue;
            }
        }

        var said = (e.ResponseBody is { Length: > 0 } body ? body : e.Message).Trim();
        return new PipelinesException(
            $"the Docker engine refused the cgroup parent {parent} ({said}): it was named for {driver.Said}"
            + (driver.Assumed ? "; the engine is asked for its driver again before the next container" : "; set Docker:CgroupParent to a name this engine takes"),
            retryHelps: driver.Assumed,
            e);
    }

    private IdleCgroup Prepare(TimeSpan patience) =>
        IdleCgroup.Prepare(_options.CgroupParent, _options.Endpoint, _options.IdleClass, () => CgroupDriver.Ask(_client, CgroupMounts.Machine, patience));

    /// <summary>The one Docker client of this engine, shared by its seams.</summary>
    internal DockerClient Client => _client;

    internal DockerOptions Options => _options;

    /// <summary>The time this engine's containers were held suspended, which no timeout counts (<see cref="RunTimeout"/>).</summary>
    internal SuspensionClock Suspensions { get; } = new();

    /// <summary>This engine's containers, known from their start, frozen and thawed through their freezer files.</summary>
    internal ContainerFreezer Freezer { get; }

    /// <summary>
    /// A container's parameters under the lock-down every container of ours gets, one-shot or
    /// warm: no network, the non-root user, a read-only root, no capabilities, no-new-privileges,
    /// memory without swap, cpu, pids, cpu shares, a small /tmp tmpfs, a capped json log and the
    /// labels that let cleanup find it, under our cgroup parent (or <paramref name="cgroup"/> in it).
    /// Its environment is the spec's variables and its secrets. An empty command keeps the image's entrypoint.
    /// </summary>
    internal CreateContainerParameters LockedDown(ContainerSpec spec, string? cgroup = null) => new()
    {
        Image = spec.ImageId,
        // null, not empty: Docker then keeps the image's own entrypoint and command.
        Entrypoint = spec.Command.Count > 0 ? [spec.Command[0]] : null!,
        Cmd = spec.Command.Count > 0 ? spec.Command.Skip(1).ToList() : null!,
        Env = spec.Env.Concat(spec.Secrets).Select(kv => $"{kv.Key}={kv.Value}").ToList(),
        User = _options.User,
        WorkingDir = ContainerLayout.Out,
        Labels = new Dictionary<string, string>(spec.Labels) { [ContainerLabels.Managed] = "true", [ContainerLabels.Owner] = ProcessOwner.Current },
        NetworkDisabled = true,
        HostConfig = new HostConfig
        {
            NetworkMode = "none",
            ReadonlyRootfs = true,
            CapDrop = ["ALL"],
            SecurityOpt = ["no-new-privileges"],
            Memory = spec.Resources.MemoryBytes,
            MemorySwap = spec.Resources.MemoryBytes,
            NanoCPUs = (long)(spec.Resources.Cpus * 1_000_000_000),
            PidsLimit = spec.Resources.Pids,
            CPUShares = _options.CpuShares,
            // As the engine's cgroup driver takes it: a slice under systemd, else a path from the
            // root of each hierarchy, where IdleCgroup makes it (a relative parent is taken by
            // runc from its own cgroup of each controller, which need not be the root).
            CgroupParent = cgroup ?? Idle.EngineParent!,
            Binds = spec.Mounts.Select(m => $"{m.HostPath}:{m.ContainerPath}:{(m.ReadOnly ? "ro" : "rw")}").ToList(),
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

    /// <summary>
    /// Creates a container. The request goes to the engine uncancelled: an engine makes the
    /// container even when the caller gives the request up half way (a cancel or a vacate while
    /// it is being created), and its id would then be known to no one and the container left for
    /// good. A caller that stops waiting gets its cancellation at once, and the container is
    /// removed as soon as the engine has made it.
    /// </summary>
    internal async Task<string> CreateAsync(CreateContainerParameters parameters, CancellationToken cancellationToken)
    {
        var creating = _client.Containers.CreateContainerAsync(parameters, CancellationToken.None);
        try
        {
            return (await creating.WaitAsync(cancellationToken).ConfigureAwait(false)).ID;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _ = RemoveOnceMadeAsync(creating);
            throw;
        }
    }

    private async Task RemoveOnceMadeAsync(Task<CreateContainerResponse> creating)
    {
        string id;
        try
        {
            id = (await creating.ConfigureAwait(false)).ID;
        }
        catch (Exception)
        {
            // It was not made: nothing to remove (the caller had already stopped waiting).
            return;
        }

        try
        {
            await RemoveQuietlyAsync(id).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The process is shutting down: the container is left with our labels, and the
            // cleanup of leftovers removes it.
        }
    }

    /// <summary>
    /// Removes a container of ours, killing it first. An engine that refuses for a moment (a
    /// removal racing the container's own end, a busy file system under load) is asked again
    /// with backoff; a container that still cannot be removed is said in the log with the
    /// engine's reason, never left silently. An engine out of reach leaves it with our labels
    /// for the cleanup of leftovers.
    /// </summary>
    internal async Task RemoveQuietlyAsync(string id)
    {
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await _client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true }, CancellationToken.None).ConfigureAwait(false);
                    return;
                }
                catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound
                    || (e.StatusCode == HttpStatusCode.Conflict && e.Message.Contains("already in progress", StringComparison.OrdinalIgnoreCase)))
                {
                    // Already gone, or being removed by another call: nothing to clean.
                    return;
                }
                catch (Exception e) when (IsConnectionFailure(e))
                {
                    // The engine is out of reach: the container is left with our labels, and the
                    // cleanup of leftovers removes it once the engine is back.
                    return;
                }
                catch (DockerApiException) when (attempt < RemoveAttempts)
                {
                    await Task.Delay(RemoveBackoff * (1 << (attempt - 1)), _time).ConfigureAwait(false);
                }
                catch (DockerApiException e)
                {
                    LogNotRemoved(_log, id.Length > 12 ? id[..12] : id, attempt, e.Message);
                    return;
                }
            }
        }
        finally
        {
            Freezer.Ended(id);
        }
    }

    /// <summary>How often a refused removal is asked for, and the first wait between (doubling).</summary>
    internal const int RemoveAttempts = 4;

    internal static readonly TimeSpan RemoveBackoff = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Starts a created container of ours (under our parent, or in <paramref name="attempt"/>'s
    /// cgroup there) and hands it to the freezer, which freezes it at once while this engine's
    /// containers are suspended.
    /// </summary>
    internal async Task StartAsync(string id, CgroupMeter.Attempt? attempt, CancellationToken cancellationToken)
    {
        await _client.Containers.StartContainerAsync(id, new ContainerStartParameters(), cancellationToken).ConfigureAwait(false);

        // Under systemd the slice exists from the first container on: a class pending on it is read now.
        RereadIdleClass();
        var cgroup = attempt is not null ? Idle.Driver.ContainerCgroup(attempt.Path, id) : Idle.Parent.Length > 0 ? Idle.ContainerCgroup(id) : null;
        if (Freezer.Started(id, cgroup))
        {
            await PauseQuietlyAsync(id).ConfigureAwait(false);
        }
    }

    /// <summary>`docker pause`, for a container whose freezer files are not ours to write; false when it ended meanwhile or runc gave up.</summary>
    internal async Task<bool> PauseQuietlyAsync(string id)
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

    internal async Task KillQuietlyAsync(string id)
    {
        // Killed at once through cgroup.kill where the kernel has it, frozen or not; else thawed
        // first if the freezer holds it, so that the engine's kill completes.
        Freezer.Kill(id);
        try
        {
            await _client.Containers.KillContainerAsync(id, new ContainerKillParameters { Signal = "KILL" }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (DockerApiException)
        {
            // It ended by itself between the timeout and the kill.
        }
    }

    /// <summary>A container's stdout and stderr as they came, at most <paramref name="maxBytes"/> (the first and last halves).</summary>
    internal async Task<string> ReadLogsAsync(string id, int maxBytes, CancellationToken cancellationToken)
    {
        using var stream = await _client.Containers.GetContainerLogsAsync(
            id,
            new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Follow = false },
            cancellationToken).ConfigureAwait(false);

        // The head and the tail are kept (an error is usually at the end), the middle is cut and said.
        var half = Math.Max(1, maxBytes / 2);
        var head = new MemoryStream();
        var tail = new byte[half];
        long tailCount = 0;
        var buffer = new byte[16384];
        long total = 0;
        while (true)
        {
            var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, cancellationToken).ConfigureAwait(false);
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

    public void Dispose() => _client.Dispose();

    [LoggerMessage(Level = LogLevel.Warning, Message = "container {Container} could not be removed after {Attempts} attempts, and is left on the engine: {Error}")]
    private static partial void LogNotRemoved(ILogger logger, string container, int attempts, string error);
}
