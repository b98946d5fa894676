using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Storage;
using Pipelines.Tenancy;

namespace Pipelines.Algorithms;

/// <summary>
/// What a push did: the version recorded, where its image is, whether this tenant had pushed the same
/// image before (<see cref="TarballWasThere"/>: another tenant's copy is not told), and how the image will be run.
/// </summary>
public sealed record PushResult(AlgorithmVersion Version, string StoredAt, bool TarballWasThere, bool IsStable);

/// <summary>An algorithm's versions and channels, for list and show.</summary>
public sealed record AlgorithmSummary(string Name, IReadOnlyList<AlgorithmVersion> Versions, IReadOnlyList<AlgorithmChannel> Channels)
{
    /// <summary>The latest channel changes (canary, shadow, promote, abort, rollback with its reason), newest first.</summary>
    public IReadOnlyList<ChannelEvent> Events { get; init; } = [];

    /// <summary>The tenant whose algorithm this is.</summary>
    public TenantId Tenant { get; init; } = TenantId.Default;
}

/// <summary>
/// Algorithms as versioned images: a push checks a `docker save` tarball, keeps it in the
/// algorithm store (Algorithms:Store) under its digest, and records the version in PostgreSQL;
/// <see cref="ResolveAsync"/> is the one place an <c>algorithm://</c> reference becomes a digest,
/// and <see cref="PinAsync"/> the one place any image of a run or a function does. A tenant's view
/// (<see cref="For"/>) names that tenant's algorithms; images stay content-addressed, one tarball
/// per digest whoever pushed it.
/// </summary>
public sealed partial class AlgorithmService(
    IAlgorithmStore catalog,
    AlgorithmOptions options,
    ObjectStoreFactory stores,
    IContainerImages images,
    TimeProvider time,
    ILogger<AlgorithmService> log,
    TenantOptions? tenants = null)
{
    // The service over the whole catalog, for a view (null for that service itself); its views, one per tenant, made once.
    private AlgorithmService? _whole;
    private TenantId _tenant = TenantId.Default;
    private readonly ConcurrentDictionary<TenantId, AlgorithmService> _views = new();

    private IAlgorithmStore Catalog => catalog;

    /// <summary>The catalog as every tenant's: where an image's owners are looked up.</summary>
    private IAlgorithmStore Whole => _whole?.Catalog ?? catalog;

    /// <summary>
    /// The service as <paramref name="scope"/> sees it: itself for all tenants; for one tenant, the
    /// same service over that tenant's view of the catalog (its names, its pushes stamped with it),
    /// made once per tenant, so the invoke path allocates nothing for it.
    /// </summary>
    public AlgorithmService For(TenantScope scope)
    {
        var root = _whole ?? this;
        if (scope.Tenant is not { } tenant)
        {
            return _whole is null ? this : throw new InvalidOperationException($"a view of one tenant cannot reach {scope}: take the view from the engine's service");
        }

        return root._views.GetOrAdd(tenant, t => new AlgorithmService(root.Catalog.For(TenantScope.Of(t)), options, stores, images, time, log, tenants) { _whole = root, _tenant = t });
    }

    /// <summary>
    /// The one home of image access (docs/tenants.md, "Images"): an image whose digest only other
    /// tenants' algorithm versions name is, for <paramref name="tenant"/>, an image that is not there,
    /// refused with the words of a missing one, so that a loaded image of one tenant never runs for
    /// another by its digest or a name that resolves to it. A digest no algorithm names is an image the
    /// operator put on the engine, which every tenant may run.
    /// </summary>
    public async Task CheckImageAccessAsync(TenantId tenant, string digest, string image, CancellationToken cancellationToken)
    {
        var owners = await Whole.DigestTenantsAsync(digest, cancellationToken).ConfigureAwait(false);
        if (owners.Count > 0 && !owners.Contains(tenant))
        {
            throw images.Missing(image);
        }
    }

    /// <summary>
    /// An image of a run's step or a function, pinned to its digest for <paramref name="tenant"/>:
    /// <c>algorithm://</c> through that tenant's catalog, any other name through
    /// <paramref name="runtime"/> and then <see cref="CheckImageAccessAsync"/>. Without a catalog
    /// (<paramref name="algorithms"/> null: one tenant, nothing pushed) the runtime alone.
    /// </summary>
    public static async Task<string> PinAsync(AlgorithmService? algorithms, IContainerRuntime runtime, string image, TenantId tenant, CancellationToken cancellationToken)
    {
        if (algorithms is null)
        {
            return await runtime.ResolveImageAsync(image, cancellationToken).ConfigureAwait(false);
        }

        if (AlgorithmReference.IsAlgorithm(image))
        {
            return (await algorithms.For(TenantScope.Of(tenant)).ResolveAsync(image, cancellationToken).ConfigureAwait(false)).Digest;
        }

        var digest = await runtime.ResolveImageAsync(image, cancellationToken).ConfigureAwait(false);
        await algorithms.CheckImageAccessAsync(tenant, digest, image, cancellationToken).ConfigureAwait(false);
        return digest;
    }

    /// <summary>The key of an image's tarball under the store's prefix: content-addressed by the image id.</summary>
    public static string TarballKey(string digest) => "images/sha256/" + digest["sha256:".Length..] + ".tar";

    /// <summary>Pushes a tarball read from <paramref name="body"/> (streamed to a scratch file, at most Algorithms:MaxImageBytes).</summary>
    public async Task<PushResult> PushAsync(string name, string version, Stream body, string? expectedDigest, string? notes, string by, CancellationToken cancellationToken)
    {
        var store = await CheckNewAsync(name, version, cancellationToken).ConfigureAwait(false);
        Directory.CreateDirectory(options.ScratchFolder);
        var temp = Path.Combine(options.ScratchFolder, $"push-{Guid.NewGuid():N}.tar");
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                await CopyLimitedAsync(body, file, options.MaxImageBytes, cancellationToken).ConfigureAwait(false);
            }

            return await PushFileAsync(store, name, version, temp, $"the tarball for {name}@{version}", expectedDigest, notes, by, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>Pushes an image on this process's Docker engine (by name or id), saved through the engine API; its id must be the tarball's digest.</summary>
    public async Task<PushResult> PushLocalImageAsync(string name, string version, string image, string? notes, string by, CancellationToken cancellationToken)
    {
        var store = await CheckNewAsync(name, version, cancellationToken).ConfigureAwait(false);
        var id = await images.ResolveImageAsync(image, cancellationToken).ConfigureAwait(false);
        Directory.CreateDirectory(options.ScratchFolder);
        var temp = Path.Combine(options.ScratchFolder, $"save-{Guid.NewGuid():N}.tar");
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                await using var limited = new LimitStream(file, options.MaxImageBytes);
                await images.SaveImageAsync(image, limited, cancellationToken).ConfigureAwait(false);
            }

            return await PushFileAsync(store, name, version, temp, $"image {image}", id, notes, by, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private async Task<PushResult> PushFileAsync(StorageLocation store, string name, string version, string path, string what, string? expectedDigest, string? notes, string by, CancellationToken ct)
    {
        var size = new FileInfo(path).Length;
        if (size > options.MaxImageBytes)
        {
            throw TooBig(what);
        }

        var archive = await ImageArchive.ReadAsync(path, what, ct).ConfigureAwait(false);
        if (expectedDigest is not null && !string.Equals(expectedDigest, archive.Digest, StringComparison.Ordinal))
        {
            throw new PipelinesException($"{what} has the digest {archive.Digest}, not {expectedDigest} as expected; nothing was stored", retryHelps: false);
        }

        var key = store.Key(TarballKey(archive.Digest));

        // "Already there" is this tenant's own earlier push of the image: that another tenant has it is not told.
        var own = (await Whole.DigestTenantsAsync(archive.Digest, ct).ConfigureAwait(false)).Contains(_tenant);
        var wasThere = false;
        var v = new AlgorithmVersion(name, version, archive.Digest, size, by, time.GetUtcNow(), notes, archive.RepoTags, archive.LockDownNotes);

        // The tenant's quota StoredBytes is checked by the catalog under its lock, before the tarball is uploaded.
        var quota = tenants is not null && tenants.Exists(_tenant) ? tenants.Settings(_tenant).Quotas.StoredBytes : null;
        var added = await catalog.AddAsync(v, async token =>
        {
            var there = await store.Store.StatAsync(key, token).ConfigureAwait(false);
            var stored = there is not null && there.Size == size;
            wasThere = stored && own;
            if (!stored)
            {
                await store.Store.UploadAsync(key, path, "application/x-tar", token).ConfigureAwait(false);
            }
        }, ct, quota).ConfigureAwait(false);
        if (!added)
        {
            throw Exists(name, version);
        }

        var stable = (await catalog.ChannelsAsync(name, ct).ConfigureAwait(false)).Any(c => c is { Channel: AlgorithmReference.Stable } && c.Version == version);
        LogPushed(log, name, version, archive.Digest, size, by);
        return new PushResult(v, store.Display(TarballKey(archive.Digest)), wasThere, stable);
    }

    /// <summary>How many channel changes <see cref="ListAsync"/> gives per algorithm.</summary>
    public const int EventsShown = 10;

    public async Task<IReadOnlyList<AlgorithmSummary>> ListAsync(string? name, CancellationToken cancellationToken)
    {
        var versions = await catalog.ListAsync(name, cancellationToken).ConfigureAwait(false);
        var channels = await catalog.ChannelsAsync(name, cancellationToken).ConfigureAwait(false);
        var events = name is null ? [] : await catalog.EventsAsync(name, EventsShown, cancellationToken).ConfigureAwait(false);
        // By tenant too: a view of every tenant (an admin's) lists two tenants' algorithms of one name apart.
        return versions.GroupBy(v => (v.Name, v.Tenant))
            .Select(g => new AlgorithmSummary(g.Key.Name, g.ToList(), channels.Where(c => c.Name == g.Key.Name && c.Tenant == g.Key.Tenant).ToList()) { Events = events, Tenant = g.Key.Tenant })
            .ToList();
    }

    /// <summary>Deletes a version, and its tarball when no other version has the same digest. Null when there is none.</summary>
    public async Task<AlgorithmVersion?> DeleteAsync(string name, string version, CancellationToken cancellationToken)
    {
        var store = Store();
        return await catalog.DeleteAsync(name, version, (digest, token) => store.Store.DeleteAsync(store.Key(TarballKey(digest)), token), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Makes a version the stable one; a canary of that version ends.</summary>
    public async Task PromoteAsync(string name, string version, string by, CancellationToken cancellationToken)
    {
        _ = await RequireAsync(name, version, cancellationToken).ConfigureAwait(false);
        var now = time.GetUtcNow();
        await catalog.SetChannelAsync(name, AlgorithmReference.Stable, version, 100, false, by, now, new ChannelEvent(name, ChannelEvent.PromoteAction, version, 100, by, null, now), null, cancellationToken).ConfigureAwait(false);
        await catalog.SetChannelAsync(name, AlgorithmReference.Canary, null, 0, false, by, now, null, onlyIfVersion: version, cancellationToken).ConfigureAwait(false);
        LogChannel(log, name, ChannelEvent.PromoteAction, version, by, null);
    }

    /// <summary>
    /// Names a version as the canary, with the share of a function's invocations it serves; with
    /// <paramref name="shadow"/>, the share of them copied to it while stable answers (docs/algorithms.md).
    /// </summary>
    public async Task CanaryAsync(string name, string version, int percent, string by, CancellationToken cancellationToken, bool shadow = false)
    {
        if (percent is < 0 or > 100)
        {
            throw new PipelinesException($"--percent {percent.ToString(CultureInfo.InvariantCulture)} is not a share: write 0 to 100", retryHelps: false);
        }

        _ = await RequireAsync(name, version, cancellationToken).ConfigureAwait(false);
        var now = time.GetUtcNow();
        var action = shadow ? ChannelEvent.ShadowAction : ChannelEvent.CanaryAction;
        await catalog.SetChannelAsync(name, AlgorithmReference.Canary, version, percent, shadow, by, now, new ChannelEvent(name, action, version, percent, by, null, now), null, cancellationToken).ConfigureAwait(false);
        LogChannel(log, name, action, version, by, null);
    }

    /// <summary>Ends a canary: the canary channel is removed and every reference goes to stable. False when there was none.</summary>
    public Task<bool> AbortCanaryAsync(string name, string by, CancellationToken cancellationToken) => AbortCanaryAsync(name, by, null, null, cancellationToken);

    /// <summary>
    /// Ends a canary with a recorded reason; with <paramref name="onlyVersion"/> only while that
    /// version is still the canary (an automatic rollback never ends a canary set after it looked).
    /// </summary>
    public async Task<bool> AbortCanaryAsync(string name, string by, string? reason, string? onlyVersion, CancellationToken cancellationToken)
    {
        var current = (await catalog.ChannelsAsync(name, cancellationToken).ConfigureAwait(false)).FirstOrDefault(c => c.Channel == AlgorithmReference.Canary);
        var version = onlyVersion ?? current?.Version;
        if (version is null)
        {
            return false;
        }

        var now = time.GetUtcNow();
        var action = reason is null ? ChannelEvent.AbortAction : ChannelEvent.RollbackAction;
        var ended = await catalog.SetChannelAsync(name, AlgorithmReference.Canary, null, 0, false, by, now, new ChannelEvent(name, action, version, null, by, reason, now), onlyIfVersion: version, cancellationToken).ConfigureAwait(false);
        if (ended)
        {
            LogChannel(log, name, action, version, by, reason);
        }

        return ended;
    }

    /// <summary>
    /// What a function following <c>algorithm://NAME@stable</c> is served by now: the digests of
    /// the stable and canary versions and the canary's share, through the same catalog as <see cref="ResolveAsync"/>.
    /// </summary>
    public async Task<AlgorithmRoute> RouteAsync(string name, CancellationToken cancellationToken) =>
        await catalog.RouteAsync(name, cancellationToken).ConfigureAwait(false)
            ?? throw new PipelinesException($"algorithm {name} has no stable version (`pipelines algorithm show {name}`)", retryHelps: false);

    /// <summary>
    /// The one home of resolution: <c>algorithm://NAME@VERSION</c> (or a channel) to the pinned
    /// version and its digest, for run submission and function deploy alike.
    /// </summary>
    public async Task<AlgorithmVersion> ResolveAsync(string image, CancellationToken cancellationToken)
    {
        var reference = AlgorithmReference.Parse(image);
        var version = reference.Version;
        if (reference.IsChannel)
        {
            var channel = (await catalog.ChannelsAsync(reference.Name, cancellationToken).ConfigureAwait(false)).FirstOrDefault(c => c.Channel == reference.Version);
            if (channel is null)
            {
                var known = await catalog.ListAsync(reference.Name, cancellationToken).ConfigureAwait(false);
                throw new PipelinesException(
                    known.Count == 0 ? NoSuch(reference.Name) : $"{image}: algorithm {reference.Name} has no {reference.Version} version (`pipelines algorithm show {reference.Name}` lists its channels)",
                    retryHelps: false);
            }

            version = channel.Version;
        }

        return await RequireAsync(reference.Name, version, cancellationToken).ConfigureAwait(false);
    }

    private async Task<AlgorithmVersion> RequireAsync(string name, string version, CancellationToken ct)
    {
        var v = await catalog.GetAsync(name, version, ct).ConfigureAwait(false);
        if (v is not null)
        {
            return v;
        }

        var known = await catalog.ListAsync(name, ct).ConfigureAwait(false);
        throw new PipelinesException(
            known.Count == 0 ? NoSuch(name) : $"algorithm {name} has no version {version}; it has {string.Join(", ", known.Select(k => k.Version))}",
            retryHelps: false);
    }

    private static string NoSuch(string name) => $"no algorithm is named {name} (`pipelines algorithm push {name} VERSION IMAGE` adds one; `pipelines algorithm list` lists them)";

    private async Task<StorageLocation> CheckNewAsync(string name, string version, CancellationToken ct)
    {
        AlgorithmReference.CheckName(name);
        AlgorithmReference.CheckVersion(version);
        var store = Store();
        if (await catalog.GetAsync(name, version, ct).ConfigureAwait(false) is not null)
        {
            throw Exists(name, version);
        }

        return store;
    }

    private StorageLocation Store() => options.Store is { } uri
        ? stores.Open(uri)
        : throw new PipelinesException("no algorithm store is configured: set Algorithms:Store (PIPELINES_Algorithms__Store) to s3://bucket/prefix or a folder every worker can read", retryHelps: false);

    private static PipelinesException Exists(string name, string version) =>
        new($"{name}@{version} was pushed already: a version is immutable, push a new version", retryHelps: false);

    private PipelinesException TooBig(string what) =>
        new($"{what} is over the limit of {options.MaxImageBytes.ToString(CultureInfo.InvariantCulture)} bytes (Algorithms:MaxImageBytes); nothing was stored", retryHelps: false);

    private async Task CopyLimitedAsync(Stream source, Stream destination, long max, CancellationToken ct)
    {
        var buffer = new byte[1 << 16];
        long total = 0;
        int read;
        while ((read = await source.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            total += read;
            if (total > max)
            {
                throw TooBig("the tarball");
            }

            await destination.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
        }
    }

    /// <summary>A write-only stream that refuses to grow past a limit: a `docker save` over the size limit stops there.</summary>
    private sealed class LimitStream(Stream inner, long max) : Stream
    {
        private long _written;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => _written;

        public override long Position { get => _written; set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _written += buffer.Length;
            if (_written > max)
            {
                throw new PipelinesException($"the image is over the limit of {max.ToString(CultureInfo.InvariantCulture)} bytes (Algorithms:MaxImageBytes); nothing was stored", retryHelps: false);
            }

            await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "algorithm {Name}: {Action} of {Version} by {By}{Reason}")]
    private static partial void LogChannelCore(ILogger logger, string name, string action, string version, string by, string reason);

    private static void LogChannel(ILogger logger, string name, string action, string version, string by, string? reason) =>
        LogChannelCore(logger, name, action, version, by, reason is null ? "" : ": " + reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "algorithm {Name}@{Version} pushed by {By}: {Digest}, {Bytes} bytes")]
    private static partial void LogPushed(ILogger logger, string name, string version, string digest, long bytes, string by);
}
