using System.Collections.Concurrent;

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
    private readonly Dictionary<(string Name, string Version), AlgorithmVersion> _versions = [];
    private readonly Dictionary<(string Name, string Channel), AlgorithmChannel> _channels = [];
    private readonly List<ChannelEvent> _events = [];
    private readonly List<ImageLoad> _loads = [];
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _digests = new(StringComparer.Ordinal);

    public Task<AlgorithmVersion?> GetAsync(string name, string version, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_versions.GetValueOrDefault((name, version)));
        }
    }

    public Task<IReadOnlyList<AlgorithmVersion>> ListAsync(string? name, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<AlgorithmVersion>>(_versions.Values.Where(v => name is null || v.Name == name)
                .OrderBy(v => v.Name, StringComparer.Ordinal).ThenByDescending(v => v.PushedAt).ThenBy(v => v.Version, StringComparer.Ordinal).ToList());
        }
    }

    public Task<IReadOnlyList<AlgorithmChannel>> ChannelsAsync(string? name, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<AlgorithmChannel>>(_channels.Values.Where(c => name is null || c.Name == name)
                .OrderBy(c => c.Name, StringComparer.Ordinal).ThenByDescending(c => c.Channel, StringComparer.Ordinal).ToList());
        }
    }

    public async Task<bool> AddAsync(AlgorithmVersion version, Func<CancellationToken, Task> ensureTarball, CancellationToken cancellationToken)
    {
        using var held = await LockDigestAsync(version.Digest, cancellationToken).ConfigureAwait(false);
        await ensureTarball(cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            if (!_versions.TryAdd((version.Name, version.Version), version))
            {
                return false;
            }

            _channels.TryAdd((version.Name, AlgorithmReference.Stable), new AlgorithmChannel(version.Name, AlgorithmReference.Stable, version.Version, 100, version.PushedAt, version.PushedBy));
            return true;
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
            if (!_versions.ContainsKey((name, version)))
            {
                return null;
            }

            CheckNotNamed(name, version);
            last = !_versions.Values.Any(o => o.Digest == v.Digest && (o.Name, o.Version) != (name, version));
        }

        // Before the version goes, as before PostgreSQL's commit: a failure here keeps it.
        if (last)
        {
            await deleteTarball(v.Digest, cancellationToken).ConfigureAwait(false);
        }

        lock (_lock)
        {
            // A channel set meanwhile waited for the digest's lock (as PostgreSQL's foreign key waits for the row).
            _versions.Remove((name, version));
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
                if (!_channels.TryGetValue((name, channel), out var current) || (onlyIfVersion is not null && current.Version != onlyIfVersion))
                {
                    return false;
                }

                _channels.Remove((name, channel));
                Record(recorded);
                return true;
            }
        }

        // A channel waits for a delete of its version under way, and then finds it gone.
        var digest = (await GetAsync(name, version, cancellationToken).ConfigureAwait(false))?.Digest ?? throw AlgorithmStoreRules.NoVersion(name, version);
        using var held = await LockDigestAsync(digest, cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            if (!_versions.ContainsKey((name, version)))
            {
                throw AlgorithmStoreRules.NoVersion(name, version);
            }

            _channels[(name, channel)] = new AlgorithmChannel(name, channel, version, percent, now, by, shadow);
            Record(recorded);
            return true;
        }
    }

    public Task<IReadOnlyList<ChannelEvent>> EventsAsync(string? name, int limit, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            // The list is in the order recorded: newest first is its reverse, as PostgreSQL's "at DESC, id DESC".
            return Task.FromResult<IReadOnlyList<ChannelEvent>>(_events.Select((e, i) => (e, i)).Where(x => name is null || x.e.Name == name)
                .OrderByDescending(x => x.e.At).ThenByDescending(x => x.i).Select(x => x.e).Take(Math.Max(0, limit)).ToList());
        }
    }

    public Task<AlgorithmRoute?> RouteAsync(string name, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            AlgorithmVersionRef? Ref(AlgorithmChannel c) => _versions.TryGetValue((name, c.Version), out var v) ? new AlgorithmVersionRef(v.Version, v.Digest) : null;
            var stable = _channels.GetValueOrDefault((name, AlgorithmReference.Stable)) is { } s ? Ref(s) : null;
            if (stable is null)
            {
                return Task.FromResult<AlgorithmRoute?>(null);
            }

            var canary = _channels.GetValueOrDefault((name, AlgorithmReference.Canary));
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
            _loads.Add(load);
            return Task.CompletedTask;
        }
    }

    public Task<IReadOnlyList<ImageLoad>> LoadsAsync(string? digest, int limit, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<ImageLoad>>(_loads.Select((l, i) => (l, i)).Where(x => digest is null || x.l.Digest == digest)
                .OrderByDescending(x => x.l.LoadedAt).ThenByDescending(x => x.i).Select(x => x.l).Take(Math.Max(0, limit)).ToList());
        }
    }

    private void CheckNotNamed(string name, string version)
    {
        var named = _channels.Values.Where(c => c.Name == name && c.Version == version).Select(c => c.Channel).OrderDescending(StringComparer.Ordinal).ToList();
        if (named.Count > 0)
        {
            throw AlgorithmStoreRules.Named(name, version, string.Join(", ", named));
        }
    }

    private void Record(ChannelEvent? recorded)
    {
        if (recorded is not null)
        {
            _events.Add(recorded);
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
