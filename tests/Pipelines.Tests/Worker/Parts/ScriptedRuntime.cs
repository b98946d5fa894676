using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Pipelines.Containers;
using Pipelines.Model;

namespace Pipelines.Tests.Worker.Parts;

/// <summary>
/// An engine whose containers are C# functions, behind every container seam, held to the same
/// contract as the Docker engine (<c>Containers/ContainerSeamsContract</c>). A script is given the
/// spec and the host folder bound at /out (and the token that stops the container), writes what
/// the algorithm would, and returns how it ended; <see cref="Shell"/> is a script that runs the
/// few <c>sh -c</c> forms the contract uses. Images are names added with <see cref="AddImage"/>;
/// a one-shot run's timeout counts only time not held suspended, as every runtime's does
/// (<see cref="RunTimeout"/>); long-lived containers run their script until it ends or they are
/// killed; <see cref="Reachable"/> false makes every verb fail as an engine out of reach does.
/// Counts its one-shot runs and keeps their specs.
/// </summary>
internal sealed class ScriptedRuntime(ScriptedRuntime.Script script)
    : IContainerRuntime, IContainerImages, ILongLivedContainers, IContainerSuspender, IContainerSweep, IEngineLiveness
{
    public delegate Task<ContainerResult> Script(ContainerSpec spec, string outDir, CancellationToken cancellationToken);

    /// <summary>The user its containers run as, as Docker:User's default.</summary>
    public const string User = "65534:65534";

    /// <summary>Image names and ids to ids.</summary>
    private readonly ConcurrentDictionary<string, string> _images = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<string, Container> _containers = new(StringComparer.Ordinal);

    private int _runs;

    public int Runs => _runs;

    public ConcurrentQueue<ContainerSpec> Specs { get; } = new();

    /// <summary>Whether the engine answers; false makes every verb throw as an engine out of reach does (retry helps).</summary>
    public bool Reachable { get; set; } = true;

    public SuspensionClock Suspensions { get; } = new();

    public string? Unmeasurable => "the scripted engine's containers have no cgroup";

    public static ContainerResult Exit(long code, string log = "") => new(code, false, false, log, TimeSpan.FromMilliseconds(1));

    /// <summary>The host folder a spec binds at a container path.</summary>
    public static string Host(ContainerSpec spec, string containerPath) => spec.Mounts.Single(m => m.ContainerPath == containerPath).HostPath;

    /// <summary>Puts an image on the engine under <paramref name="name"/>, with <paramref name="id"/> or one made from the name; returns its id.</summary>
    public string AddImage(string name, string? id = null)
    {
        id ??= "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)));
        _images[name] = id;
        _images[id] = id;
        return id;
    }

    public string CgroupOf(string id) => throw new InvalidOperationException(Unmeasurable);

    public Task PingAsync(CancellationToken cancellationToken)
    {
        Answer();
        return Task.CompletedTask;
    }

    public Task<string> ResolveImageAsync(string image, CancellationToken cancellationToken)
    {
        Answer();
        return Task.FromResult(_images.TryGetValue(image, out var id) ? id : throw Missing(image));
    }

    public Task<bool> HasImageAsync(string image, CancellationToken cancellationToken)
    {
        Answer();
        return Task.FromResult(_images.ContainsKey(image));
    }

    public Task<long> ImageSizeAsync(string image, CancellationToken cancellationToken)
    {
        Answer();
        return Task.FromResult(_images.TryGetValue(image, out var id) ? (long)Encoding.UTF8.GetByteCount(Tarball(id)) : throw Missing(image));
    }

    /// <summary>A tarball of this engine is one line that names the image's id.</summary>
    public async Task LoadImageAsync(Stream tarball, CancellationToken cancellationToken)
    {
        Answer();
        using var reader = new StreamReader(tarball, Encoding.UTF8, leaveOpen: true);
        var text = await reader.ReadToEndAsync(cancellationToken);
        if (!text.StartsWith("scripted image ", StringComparison.Ordinal))
        {
            throw new PipelinesException("the scripted engine refused the image tarball: it is not one of its own", retryHelps: false);
        }

        AddImage(text["scripted image ".Length..].Trim());
    }

    public async Task SaveImageAsync(string image, Stream destination, CancellationToken cancellationToken)
    {
        var id = await ResolveImageAsync(image, cancellationToken);
        await destination.WriteAsync(Encoding.UTF8.GetBytes(Tarball(id)), cancellationToken);
    }

    /// <summary>No registry answers the scripted engine: every pull is of a registry out of reach.</summary>
    public Task PullImageAsync(string reference, RegistryLogin? login, CancellationToken cancellationToken)
    {
        Answer();
        throw new PipelinesException($"the scripted engine could not pull {reference}: its registry is out of reach", retryHelps: true);
    }

    public async Task<ContainerResult> RunAsync(ContainerSpec spec, CancellationToken cancellationToken)
    {
        Answer();
        if (!_images.ContainsKey(spec.ImageId))
        {
            throw new PipelinesException($"image {spec.ImageId} is no longer on the scripted engine", retryHelps: false);
        }

        Interlocked.Increment(ref _runs);
        Specs.Enqueue(spec);
        var outDir = Host(spec, ContainerLayout.Out);
        var clock = Stopwatch.StartNew();
        using var timeout = new RunTimeout(Suspensions, spec.Resources.Timeout);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Expired);
        try
        {
            var result = await script(spec, outDir, stop.Token);
            return result with { Log = LogMask.Apply(result.Log, spec.Secrets) };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && timeout.Expired.IsCancellationRequested)
        {
            return new ContainerResult(137, TimedOut: true, OomKilled: false, "", clock.Elapsed);
        }
    }

    public Task<string> StartAsync(ContainerSpec spec, CancellationToken cancellationToken)
    {
        Answer();
        if (!_images.ContainsKey(spec.ImageId))
        {
            throw new PipelinesException($"image {spec.ImageId} is not on the scripted engine", retryHelps: false);
        }

        var labels = new Dictionary<string, string>(spec.Labels) { [ContainerLabels.Managed] = "true", [ContainerLabels.Owner] = ProcessOwner.Current };
        var container = new Container(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)), spec, labels);
        _containers[container.Id] = container;
        container.Exited = Task.Run(() => container.RunAsync(script), CancellationToken.None);
        return Task.FromResult(container.Id);
    }

    public async Task<long> WaitAsync(string id, CancellationToken cancellationToken)
    {
        var container = Find(id);
        return await container.Exited.WaitAsync(cancellationToken);
    }

    public Task KillAsync(string id)
    {
        Answer();
        if (_containers.TryGetValue(id, out var container))
        {
            container.Kill();
        }

        return Task.CompletedTask;
    }

    public Task RemoveAsync(string id)
    {
        if (Reachable && _containers.TryRemove(id, out var container))
        {
            container.Kill();
        }

        return Task.CompletedTask;
    }

    public Task<string> ReadLogAsync(string id, int maxBytes, CancellationToken cancellationToken) => Task.FromResult(Find(id).Log);

    public Task<ContainerInfo?> InspectAsync(string id, CancellationToken cancellationToken)
    {
        Answer();
        return Task.FromResult(_containers.TryGetValue(id, out var c) ? c.Info() : null);
    }

    public Task<int> SuspendAllAsync(CancellationToken cancellationToken)
    {
        Answer();
        Suspensions.Suspended();
        return Task.FromResult(Ours().Count(c => c.Hold(ContainerRunState.Running, ContainerRunState.Paused)));
    }

    public Task<int> ResumeAllAsync(CancellationToken cancellationToken)
    {
        Answer();
        var resumed = Ours().Count(c => c.Hold(ContainerRunState.Paused, ContainerRunState.Running));
        Suspensions.Resumed();
        return Task.FromResult(resumed);
    }

    public Task<int> RemoveLeftoversAsync(Func<string?, bool> isGone, CancellationToken cancellationToken)
    {
        Answer();
        var removed = 0;
        foreach (var c in _containers.Values.Where(c => isGone(c.Labels.GetValueOrDefault(ContainerLabels.Owner))))
        {
            if (_containers.TryRemove(c.Id, out _))
            {
                c.Kill();
                removed++;
            }
        }

        return Task.FromResult(removed);
    }

    /// <summary>
    /// A script that runs <c>sh -c</c> with statements split at ';' of the forms the contract
    /// uses: <c>echo WORDS</c> (to stdout, to stderr with <c>&gt;&amp;2</c>, or into a file of
    /// /out with <c>&gt; /out/NAME</c>; <c>$NAME</c> is the variable's value), <c>sleep SECONDS</c>
    /// and <c>exit CODE</c>. Anything else is not a script of the scripted engine, and says so.
    /// </summary>
    public static async Task<ContainerResult> Shell(ContainerSpec spec, string outDir, CancellationToken cancellationToken)
    {
        if (spec.Command is not ["sh", "-c", var text])
        {
            throw new NotSupportedException($"the scripted shell runs sh -c SCRIPT, not {string.Join(' ', spec.Command)}");
        }

        var clock = Stopwatch.StartNew();
        var log = new StringBuilder();
        foreach (var statement in text.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var words = statement.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            switch (words)
            {
                case ["echo", .. var rest] when rest is [.., ">", var file] && file.StartsWith(ContainerLayout.Out + "/", StringComparison.Ordinal):
                    await File.WriteAllTextAsync(Path.Combine(outDir, file[(ContainerLayout.Out.Length + 1)..]), Expand(rest[..^2], spec) + "\n", cancellationToken);
                    break;
                case ["echo", .. var rest]:
                    log.Append(Expand(rest is [.., ">&2"] ? rest[..^1] : rest, spec)).Append('\n');
                    break;
                case ["sleep", var seconds]:
                    await Task.Delay(TimeSpan.FromSeconds(double.Parse(seconds, CultureInfo.InvariantCulture)), cancellationToken);
                    break;
                case ["exit", var code]:
                    return new ContainerResult(long.Parse(code, CultureInfo.InvariantCulture), false, false, log.ToString(), clock.Elapsed);
                default:
                    throw new NotSupportedException($"the scripted shell runs echo, sleep and exit, not: {statement}");
            }
        }

        return new ContainerResult(0, false, false, log.ToString(), clock.Elapsed);
    }

    private static string Expand(string[] words, ContainerSpec spec) => string.Join(' ', words.Select(w =>
        !w.StartsWith('$') ? w
        : spec.Secrets.TryGetValue(w[1..], out var secret) ? secret
        : spec.Env.GetValueOrDefault(w[1..], "")));

    private static string Tarball(string id) => "scripted image " + id + "\n";

    private static PipelinesException Missing(string image) =>
        new($"image '{image}' is not on the scripted engine", retryHelps: false);

    /// <summary>Throws as an engine out of reach does.</summary>
    private void Answer()
    {
        if (!Reachable)
        {
            throw new PipelinesException("cannot reach the scripted engine: it is down", retryHelps: true);
        }
    }

    private Container Find(string id)
    {
        Answer();
        return _containers.TryGetValue(id, out var container)
            ? container
            : throw new PipelinesException($"there is no container {id} on the scripted engine", retryHelps: false);
    }

    private IEnumerable<Container> Ours() => _containers.Values.Where(c => c.Labels[ContainerLabels.Owner] == ProcessOwner.Current);

    /// <summary>One long-lived container: its script runs until it ends or the container is killed.</summary>
    private sealed class Container(string id, ContainerSpec spec, IReadOnlyDictionary<string, string> labels)
    {
        private readonly CancellationTokenSource _kill = new();
        private readonly Lock _lock = new();
        private ContainerRunState _state = ContainerRunState.Running;
        private long? _exitCode;

        public string Id { get; } = id;

        public IReadOnlyDictionary<string, string> Labels { get; } = labels;

        public Task<long> Exited { get; set; } = Task.FromResult(0L);

        public string Log { get; private set; } = "";

        public void Kill() => _kill.Cancel();

        /// <summary>Moves a container in state <paramref name="from"/> to <paramref name="to"/>; false when it was in another.</summary>
        public bool Hold(ContainerRunState from, ContainerRunState to)
        {
            lock (_lock)
            {
                if (_state != from)
                {
                    return false;
                }

                _state = to;
                return true;
            }
        }

        public async Task<long> RunAsync(Script script)
        {
            long code;
            try
            {
                var result = await script(spec, spec.Mounts.SingleOrDefault(m => m.ContainerPath == ContainerLayout.Out)?.HostPath ?? "", _kill.Token);
                (code, Log) = (result.ExitCode, LogMask.Apply(result.Log, spec.Secrets));
            }
            catch (OperationCanceledException) when (_kill.IsCancellationRequested)
            {
                // As Docker says a first process killed by SIGKILL: 128 + 9.
                code = 137;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The container's process crashed: it ends as a process that failed, with why in its log.
                (code, Log) = (1, e.Message);
            }

            lock (_lock)
            {
                (_state, _exitCode) = (ContainerRunState.Exited, code);
            }

            return code;
        }

        public ContainerInfo Info()
        {
            lock (_lock)
            {
                var limits = spec.Resources;
                return new ContainerInfo(
                    Id,
                    _state,
                    _exitCode,
                    OomKilled: false,
                    Labels,
                    new ContainerLockDown(User, "none", ReadOnlyRoot: true, ["ALL"], NoNewPrivileges: true, limits.MemoryBytes, limits.Cpus, limits.Pids));
            }
        }
    }
}
