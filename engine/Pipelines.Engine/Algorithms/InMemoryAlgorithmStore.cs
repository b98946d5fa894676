using System.Collections.Concurrent;
using Pipelines.Tenancy;

namespace Pipelines.Algorithms;

/// <summary>
/// The algorithm catalog of the embedded mode (no PostgreSQL configured): one process, kept in
/// memory with the same rules as <see cref="PostgresAlgorithmStore"/> (they are on
/// <see cref="IAlgorithmStore"/>). A digest's lock is a semaphore of this process, held across the
/// tarball callback as PostgreSQL's advisory lock is; the rows change under one lock. The image
/// tarballs are wherever Algorithms:Store says; the catalog does not outlive the process.
/// </summary>
internal sealed class InMemoryAlgorithmStore : IAlgorithmStore
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string Tenant, string Name, string Version), AlgorithmVersion> _versions = [];
    private readonly Dictionary<(string Tenant, string Name, string Channel), AlgorithmChannel> _channels = [];
    private readonly List<ChannelEvent> _events = [];
    private readonly List<ImageLoad> _loads = [];
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _digests = new(StringComparer.Ordinal);

    // Null: the whole store (names in the default tenant, listings of every tenant).
    private readonly TenantId? _tenant;

    public InMemoryAlgorithmStore()
    {
    }

    /// <summary>A view of <paramref name="whole"/>'s data: the same collections and digest locks.</summary>
    private InMemoryAlgorithmStore(InMemoryAlgorithmStore whole, TenantId? tenant) =>
        (_lock, _versions, _channels, _events, _loads, _digests, _tenant) = (whole._lock, whole._versions, whole._channels, whole._events, whole._loads, whole._digests, tenant);

    private TenantId Home => _tenant ?? TenantId.Default;

    public IAlgorithmStore For(TenantScope scope) => scope.Narrow(_tenant) is var t && t == _tenant ? this : new InMemoryAlgorithmStore(this, t);

    /// <summary>One name in this store's tenant, or (no name) every algorithm in its scope: PostgreSQL's NameOrScope.</summary>
    private bool Reaches(TenantId owner, string ownerName, string? name) =>
        name is null ? _tenant is not { } t || t == owner : owner == Home && ownerName == name;

    public Task<AlgorithmVersion?> GetAsync(string name, string version, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_versions.GetValueOrDefault((Home.Value, name, version)));
        }
    }

    public Task<IReadOnlyList<AlgorithmVersion>> ListAsync(string? name, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<AlgorithmVersion>>(_versions.Values.Where(v => Reaches(v.Tenant, v.Name, name))
                .OrderBy(v => v.Name, StringComparer.Ordinal).ThenBy(v => v.Tenant.Value, StringComparer.Ordinal).ThenByDescending(v => v.PushedAt).ThenBy(v => v.Version, StringComparer.Ordinal).ToList());
        }
    }

    public Task<IReadOnlyList<AlgorithmChannel>> ChannelsAsync(string? name, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<AlgorithmChannel>>(_channels.Values.Where(c => Reaches(c.Tenant, c.Name, name))
                .OrderBy(c => c.Name, StringComparer.Ordinal).ThenBy(c => c.Tenant.Value, StringComparer.Ordinal).ThenByDescending(c => c.Channel, StringComparer.Ordinal).ToList());
        }
    }

    public async Task<bool> AddAsync(AlgorithmVersion version, Func<CancellationToken, Task> ensureTarball, CancellationToken cancellationToken, long? storedBytes = null)
    {
        version = version with { Tenant = _tenant ?? version.Tenant };
        var tenant = version.Tenant.Value;

        // The tenant's lock, then the digest's (as PostgreSQL's): the sum of its images and the insert are one step.
        using var own = storedBytes is null ? null : await LockDigestAsync("tenant:" + tenant, cancellationToken).ConfigureAwait(false);
        using var held = await LockDigestAsync(version.Digest, cancellationToken).ConfigureAwait(false);
        if (storedBytes is { } limit)
        {
            long stored;
            bool has;
            lock (_lock)
            {
                var mine = _versions.Values.Where(v => v.Tenant == version.Tenant).DistinctBy(v => v.Digest).ToList();
                stored = mine.Sum(v => v.SizeBytes);
                has = mine.Any(v => v.Digest == version.Digest);
            }

            if (!has && stored + version.SizeBytes > limit)
            {
                throw Tenancy.QuotaExceededException.StoredBytes(stored, version.SizeBytes, limit);
            }
        }

        await ensureTarball(cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            if (!_versions.TryAdd((tenant, version.Name, version.Version), version))
            {
                return false;
            }

            _channels.TryAdd((tenant, version.Name, AlgorithmReference.Stable), new AlgorithmChannel(version.Name, AlgorithmReference.Stable, version.Version, 100, version.PushedAt, version.PushedBy) { Tenant = version.Tenant });
            return true;
        }
    }

    public Task<IReadOnlyList<TenantId>> DigestTenantsAsync(string digest, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<TenantId>>(_versions.Values.Where(v => v.Digest == digest && (_tenant is not { } t || t == v.Tenant))
                .Select(v => v.Tenant).Distinct().OrderBy(t => t.Value, StringComparer.Ordinal).ToList());
        }
    }

    public async Task<AlgorithmVersion?> DeleteAsync(string name, string version, Func<string, CancellationToken, Task> deleteTarball, CancellationToken cancellationToken)
    {
        var v = await GetAsync(name, version, cancellationToken).ConfigureAwait(false);
        if (v is null)
        {
            return null;
        }

        using var held = await LockDigestAsync(v.Digest, cancellationToken).ConfigureAwait(false);
        bool last;
        lock (_lock)
        {
            if (!_versions.ContainsKey((Home.Value, name, version)))
            {
                return null;
            }

            CheckNotNamed(name, version);

            // Images are content-addressed: another tenant's version of the digest keeps its tarball.
            last = !_versions.Values.Any(o => o.Digest == v.Digest && (o.Tenant, o.Name, o.Version) != (Home, name, version));
        }

        // Before the version goes, as before PostgreSQL's commit: a failure here keeps it.
        if (last)
        {
            await deleteTarball(v.Digest, cancellationToken).ConfigureAwait(false);
        }

        lock (_lock)
        {
            // A channel set meanwhile waited for the digest's lock (as PostgreSQL's foreign key waits for the row).
            _versions.Remove((Home.Value, name, version));
            return v;
        }
    }

    public async Task<bool> SetChannelAsync(
        string name, string channel, string? version, int percent, bool shadow, string by, DateTimeOffset now, ChannelEvent? recorded, string? onlyIfVersion, CancellationToken cancellationToken)
    {
        if (version is null)
        {
            lock (_lock)
            {
                if (!_channels.TryGetValue((Home.Value, name, channel), out var current) || (onlyIfVersion is not null && current.Version != onlyIfVersion))
                {
                    return false;
                }

                _channels.Remove((Home.Value, name, channel));
                Record(recorded);
                return true;
            }
        }

        // A channel waits for a delete of its version under way, and then finds it gone.
        var digest = (await GetAsync(name, version, cancellationToken).ConfigureAwait(false))?.Digest ?? throw AlgorithmStoreRules.NoVersion(name, version);
        using var held = await LockDigestAsync(digest, cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            if (!_versions.ContainsKey((Home.Value, name, version)))
            {
                throw AlgorithmStoreRules.NoVersion(name, version);
            }

            _channels[(Home.Value, name, channel)] = new AlgorithmChannel(name, channel, version, percent, now, by, shadow) { Tenant = Home };
            Record(recorded);
            return true;
        }
    }

    public Task<IReadOnlyList<ChannelEvent>> EventsAsync(string? name, int limit, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            // The list is in the order recorded: newest first is its reverse, as PostgreSQL's "at DESC, id DESC".
            return Task.FromResult<IReadOnlyList<ChannelEvent>>(_events.Select((e, i) => (e, i)).Where(x => Reaches(x.e.Tenant, x.e.Name, name))
                .OrderByDescending(x => x.e.At).ThenByDescending(x => x.i).Select(x => x.e).Take(Math.Max(0, limit)).ToList());
        }
    }

    public Task<AlgorithmRoute?> RouteAsync(string name, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            AlgorithmVersionRef? Ref(AlgorithmChannel c) => _versions.TryGetValue((Home.Value, name, c.Version), out var v) ? new AlgorithmVersionRef(v.Version, v.Digest) : null;
            var stable = _channels.GetValueOrDefault((Home.Value, name, AlgorithmReference.Stable)) is { } s ? Ref(s) : null;
            if (stable is null)
            {
                return Task.FromResult<AlgorithmRoute?>(null);
            }

            var canary = _channels.GetValueOrDefault((Home.Value, name, AlgorithmReference.Canary));
            var canaryRef = canary is null ? null : Ref(canary);
            return Task.FromResult<AlgorithmRoute?>(canaryRef is null
                ? new AlgorithmRoute(name, stable, null, 0, false, null)
                : new AlgorithmRoute(name, stable, canaryRef, canary!.Percent, canary.Shadow, canary.UpdatedAt));
        }
    }

    public Task RecordLoadAsync(ImageLoad load, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _loads.Add(load with { Tenant = _tenant ?? load.Tenant });
            return Task.CompletedTask;
        }
    }

    public Task<IReadOnlyList<ImageLoad>> LoadsAsync(string? digest, int limit, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<ImageLoad>>(_loads.Select((l, i) => (l, i)).Where(x => (digest is null || x.l.Digest == digest) && (_tenant is not { } t || t == x.l.Tenant))
                .OrderByDescending(x => x.l.LoadedAt).ThenByDescending(x => x.i).Select(x => x.l).Take(Math.Max(0, limit)).ToList());
        }
    }

    private void CheckNotNamed(string name, string version)
    {
        var named = _channels.Values.Where(c => c.Tenant == Home && c.Name == name && c.Version == version).Select(c => c.Channel).OrderDescending(StringComparer.Ordinal).ToList();
        if (named.Count > 0)
        {
            throw AlgorithmStoreRules.Named(name, version, string.Join(", ", named));
        }
    }

    private void Record(ChannelEvent? recorded)
    {
        if (recorded is not null)
        {
            _events.Add(recorded with { Tenant = Home });
        }
    }

    /// <summary>Waits for a digest's lock; disposing the handle lets it go.</summary>
    private async Task<IDisposable> LockDigestAsync(string digest, CancellationToken ct)
    {
        var gate = _digests.GetOrAdd(digest, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct).ConfigureAwait(false);
        return new Held(gate);
    }

    private sealed class Held(SemaphoreSlim gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}
