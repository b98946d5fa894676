using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Storage;

namespace Pipelines.Algorithms;

/// <summary>
/// The container runtime every part uses, a wrapper over the seams below it (the runtime and the
/// engine's images, never an engine's class, so that wrappers stack): resolves <c>algorithm://</c> references through the catalog
/// (so runs and functions pin a pushed version's digest at submission and deploy), pulls images
/// named with a registry that the engine lacks, and before a container starts makes sure its
/// image is on this worker's engine, loading it from the algorithm store once per digest however
/// many tasks wait for it.
/// </summary>
internal sealed partial class AlgorithmRuntime(
    IContainerRuntime containers,
    IContainerImages images,
    AlgorithmService? algorithms,
    IAlgorithmStore? catalog,
    AlgorithmOptions options,
    ObjectStoreFactory stores,
    string worker,
    TimeProvider time,
    ILogger<AlgorithmRuntime> log) : IContainerRuntime
{
    private readonly ConcurrentDictionary<string, Lazy<Task<TimeSpan>>> _loads = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<string, long> _seen = new(StringComparer.Ordinal);

    public async Task<string> ResolveImageAsync(string image, CancellationToken cancellationToken)
    {
        if (AlgorithmReference.IsAlgorithm(image))
        {
            if (algorithms is null)
            {
                throw new PipelinesException($"{image}: algorithm:// images are resolved through the algorithm catalog, in PostgreSQL (set PIPELINES_POSTGRES and Algorithms:Store) or, without it, in one `pipelines server`'s memory (push to it and run there: --server URL)", retryHelps: false);
            }

            return (await algorithms.ResolveAsync(image, cancellationToken).ConfigureAwait(false)).Digest;
        }

        if (HasRegistry(image) && !await images.HasImageAsync(image, cancellationToken).ConfigureAwait(false))
        {
            await images.PullImageAsync(image, Login(image), cancellationToken).ConfigureAwait(false);
        }

        return await containers.ResolveImageAsync(image, cancellationToken).ConfigureAwait(false);
    }

    public async Task<ContainerResult> RunAsync(ContainerSpec spec, CancellationToken cancellationToken)
    {
        var image = await EnsureImageAsync(spec.ImageId, cancellationToken, pullFrom: spec.ImageName).ConfigureAwait(false);
        var result = await containers.RunAsync(spec, cancellationToken).ConfigureAwait(false);
        return result.WithImage(spec.ImageId, image);
    }

    /// <summary>
    /// Makes sure the image <paramref name="digest"/> is on this worker's engine; when it was not,
    /// returns what this caller spent on it (the load or pull it made, or its wait for the one
    /// another task started, in seconds), or null when it was there.
    /// </summary>
    /// <remarks>
    /// <paramref name="recentlySeenWillDo"/> skips the engine's answer for a digest seen there in
    /// the last 10 s: a function's invocations are too quick for an inspect each; a task's container start is not.
    /// An image pinned from a name with a registry (<paramref name="pullFrom"/>) is pulled from
    /// that registry and must still be the pinned image; any other is loaded from the algorithm store.
    /// </remarks>
    public async Task<ImageArrival?> EnsureImageAsync(string digest, CancellationToken cancellationToken, bool recentlySeenWillDo = false, string? pullFrom = null)
    {
        if (!digest.StartsWith("sha256:", StringComparison.Ordinal)
            || (recentlySeenWillDo && _seen.TryGetValue(digest, out var at) && time.GetElapsedTime(at) < TimeSpan.FromSeconds(10)))
        {
            return null;
        }

        if (await images.HasImageAsync(digest, cancellationToken).ConfigureAwait(false))
        {
            _seen[digest] = time.GetTimestamp();
            return null;
        }

        // Single flight per digest: the first task loads or pulls, the others wait for that same one.
        var registry = pullFrom is not null && HasRegistry(pullFrom) ? pullFrom : null;
        var clock = Stopwatch.StartNew();
        var mine = new Lazy<Task<TimeSpan>>(() => registry is null ? LoadAsync(digest) : PullAsync(digest, registry), LazyThreadSafetyMode.ExecutionAndPublication);
        var flight = _loads.GetOrAdd(digest, mine);
        try
        {
            var took = await flight.Value.WaitAsync(cancellationToken).ConfigureAwait(false);

            // The waiter's own time is its wait, which began when it found the image missing: the load's own time is the loader's.
            return ReferenceEquals(flight, mine)
                ? new ImageArrival(registry is null ? ImageArrivalKind.Loaded : ImageArrivalKind.Pulled, registry, took.TotalSeconds)
                : new ImageArrival(ImageArrivalKind.Waited, registry, clock.Elapsed.TotalSeconds);
        }
        finally
        {
            // The next task that misses the image (it was removed since) loads it again; a failed load is tried again too.
            if (flight.Value.IsCompleted)
            {
                _loads.TryRemove(new KeyValuePair<string, Lazy<Task<TimeSpan>>>(digest, flight));
            }
        }
    }

    /// <summary>
    /// Pulls an image pinned from a registry name and checks that the name still gives the
    /// pinned image: a tag moved since submission fails the task (running another image than
    /// the one the run's identity names would be a lie in its provenance).
    /// </summary>
    private async Task<TimeSpan> PullAsync(string digest, string name)
    {
        var ct = CancellationToken.None;
        var clock = Stopwatch.StartNew();
        await images.PullImageAsync(name, Login(name), ct).ConfigureAwait(false);
        if (!await images.HasImageAsync(digest, ct).ConfigureAwait(false))
        {
            var now = await images.ResolveImageAsync(name, ct).ConfigureAwait(false);
            throw new PipelinesException(
                $"pulled {name} from its registry, but it is now the image {now}, not the {digest} pinned when the run was submitted (the tag was moved): "
                + $"name the image by its digest (`image: {ImageReference.Parse(name).Repository}@sha256:…`) or submit the run again", retryHelps: false);
        }

        var took = clock.Elapsed;
        await RecordAsync(digest, name, took, await images.ImageSizeAsync(digest, ct).ConfigureAwait(false)).ConfigureAwait(false);
        return took;
    }

    private async Task<TimeSpan> LoadAsync(string digest)
    {
        // Not the first waiter's token: one task's cancel must not fail the others' load.
        var ct = CancellationToken.None;
        var clock = Stopwatch.StartNew();
        if (options.Store is null)
        {
            throw new PipelinesException($"image {digest} is not on this worker's Docker engine, and no algorithm store (Algorithms:Store) is configured to load it from", retryHelps: false);
        }

        var store = stores.Open(options.Store);
        var key = store.Key(AlgorithmService.TarballKey(digest));
        if (await store.Store.StatAsync(key, ct).ConfigureAwait(false) is null)
        {
            throw new PipelinesException($"image {digest} is not on this worker's Docker engine nor in the algorithm store ({store.Display(AlgorithmService.TarballKey(digest))}): load it on every worker, or push it (`pipelines algorithm push`)", retryHelps: false);
        }

        Directory.CreateDirectory(options.ScratchFolder);
        var temp = Path.Combine(options.ScratchFolder, $"load-{Guid.NewGuid():N}.tar");
        try
        {
            var downloaded = await store.Store.DownloadAsync(key, temp, ct).ConfigureAwait(false);

            // Checked before the engine sees it: a tarball whose config is not the digest is never loaded.
            var archive = await ImageArchive.ReadAsync(temp, store.Display(AlgorithmService.TarballKey(digest)), ct).ConfigureAwait(false);
            if (archive.Digest != digest)
            {
                throw new PipelinesException($"the algorithm store's tarball for {digest} holds the image {archive.Digest}: it was altered, and is not loaded", retryHelps: false);
            }

            await using (var file = File.OpenRead(temp))
            {
                await images.LoadImageAsync(file, ct).ConfigureAwait(false);
            }

            if (!await images.HasImageAsync(digest, ct).ConfigureAwait(false))
            {
                throw new PipelinesException($"the Docker engine loaded the tarball for {digest} but has no image {digest} after it", retryHelps: false);
            }

            var took = clock.Elapsed;
            await RecordAsync(digest, store.Display(AlgorithmService.TarballKey(digest)), took, downloaded.Size).ConfigureAwait(false);
            return took;
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>A load or pull this worker made: logged, and kept in the catalog's loads (the dashboard's Algorithms page, GET /api/algorithms/loads).</summary>
    private async Task RecordAsync(string digest, string source, TimeSpan took, long bytes)
    {
        LogLoaded(log, digest, source, took.TotalSeconds, bytes);
        if (catalog is not null)
        {
            await catalog.RecordLoadAsync(new ImageLoad(digest, worker, source, took.TotalSeconds, bytes, time.GetUtcNow()), CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Whether a reference names a registry (<see cref="ImageReference.Registry"/>); an algorithm:// reference does not.</summary>
    internal static bool HasRegistry(string image) => ImageReference.Parse(image).Registry is not null;

    private RegistryLogin? Login(string image)
    {
        var host = ImageReference.Parse(image).Registry!;
        return options.Credentials(host) is { } c ? new RegistryLogin(host, c.Username, c.Password) : null;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "image {Digest} loaded from {Source} in {Seconds:0.00} s ({Bytes} bytes)")]
    private static partial void LogLoaded(ILogger logger, string digest, string source, double seconds, long bytes);
}
