using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Model;
using Pipelines.Quotas;
using Pipelines.Telemetry;
using Pipelines.Tenancy;

namespace Pipelines.Containers.Warm;

/// <summary>
/// Warm containers, per owner, over <see cref="ILongLivedContainers"/> whatever engine runs them (the
/// name is from when Docker was the only one), under the lock-down of every container. Rules (docs/functions.md, "The pool"):
/// a free container serves the next request; when none is free and fewer than Max run, one more
/// starts; at most MaxQueue requests wait; a container idle for IdleTimeout stops unless only
/// MinWarm are left; a container that ends, hangs or breaks the protocol is removed and its
/// request fails with <see cref="WarmContainerException"/>; a container whose folders pass its
/// quotas while it holds no request (an http server writing in the background) is retired and
/// replaced; no container ever serves two owners. A container of a tenant's function
/// (<see cref="WarmSpec.Tenant"/>) takes a slot of the tenant's quota WarmContainers before it
/// starts and gives it back when it is gone, however it goes (docs/tenants.md, "Warm containers").
/// </summary>
public sealed partial class DockerWarmPool : IWarmPool
{
    /// <summary>The label naming a warm container's owner (a function version, a run's step).</summary>
    public const string WarmOwnerLabel = "org.pipelines.warm.owner";

    private const string ForkSocket = "warm.sock";
    private const string HttpSocketName = "http.sock";

    private readonly ILongLivedContainers _containers;
    private readonly DockerOptions _options;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly QuotaWatch _quotaWatch;
    private readonly TenantQuotas? _quotas;
    private readonly Task _idleWatch;
    private readonly Dictionary<string, OwnerPool> _owners = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposed = new();

    // Stops not awaited by their cause (an idle timer, a lease's end, a retired run): the pool's
    // disposal waits for them, so that a process that ends leaves no warm container behind.
    private readonly ConcurrentDictionary<Task, byte> _stopping = new();
    private long _removed;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <param name="quotaWatch">The cadence of the idle containers' watch and their disk's reserve, as a request is watched.</param>
    /// <param name="quotas">The tenants' quotas, whose WarmContainers a function's container takes a slot of; none without (every container starts).</param>
    public DockerWarmPool(ILongLivedContainers containers, DockerOptions options, QuotaWatch quotaWatch, ILogger<DockerWarmPool>? log = null, TimeProvider? time = null, TenantQuotas? quotas = null)
    {
        _quotas = quotas;
        _containers = containers;
        _options = options;
        _log = (ILogger?)log ?? NullLogger.Instance;
        _time = time ?? TimeProvider.System;
        _quotaWatch = quotaWatch;
        Directory.CreateDirectory(_options.WarmRoot);
        RemoveDeadFolders();
        _idleWatch = WatchIdleAsync();
    }

    public async ValueTask<WarmLease> AcquireAsync(WarmSpec spec, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        var pool = Owner(spec);
        TaskCompletionSource<WarmContainer> waiter;
        lock (pool)
        {
            if (TakeFree(pool) is { } lease)
            {
                return lease;
            }

            // The queue is the waiters that no starting container, nor one that may still start
            // (up to Max), will serve: with queue 0 a request waits only for a container's start.
            var queued = pool.Waiting.Count - pool.StartsAhead();
            if (queued >= spec.MaxQueue)
            {
                throw new PoolFullException(spec.Owner, Math.Max(0, queued));
            }

            waiter = new TaskCompletionSource<WarmContainer>(TaskCreationOptions.RunContinuationsAsynchronously);
            pool.Waiting.AddLast(waiter);
            StartWhatIsNeeded(pool);
        }

        Changed();
        using (cancellationToken.Register(() =>
        {
            lock (pool)
            {
                pool.Waiting.Remove(waiter);
            }

            waiter.TrySetCanceled(cancellationToken);
        }))
        {
            try
            {
                // A waiter handed a container that never served before waited for its start: a cold start.
                var container = await waiter.Task.ConfigureAwait(false);
                var cold = Interlocked.Increment(ref container.Leases) == 1;
                EngineMetrics.WarmRequest(spec.Owner, cold);
                return new PoolLease(this, pool, container, cold);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Handed a container just as the wait was cancelled: give it back.
                if (waiter.Task.IsCompletedSuccessfully)
                {
                    Release(pool, waiter.Task.Result);
                }

                throw;
            }
        }
    }

    public WarmLease? TryAcquireFree(WarmSpec spec)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        var pool = Owner(spec);
        lock (pool)
        {
            return TakeFree(pool);
        }
    }

    /// <summary>A lease on a free container of the pool, or null. Under the pool's lock.</summary>
    private PoolLease? TakeFree(OwnerPool pool)
    {
        if (pool.TakeFree() is not { } free)
        {
            return null;
        }

        Interlocked.Increment(ref free.Leases);
        EngineMetrics.WarmRequest(pool.Spec.Owner, coldStart: false);
        return new PoolLease(this, pool, free, coldStart: false);
    }

    public void Prewarm(WarmSpec spec, int count)
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }

        var pool = Owner(spec);
        lock (pool)
        {
            var wanted = Math.Min(count, pool.Spec.Max) - pool.Ready.Count - pool.Starting;
            for (var i = 0; i < wanted; i++)
            {
                pool.Starting++;
                _ = StartAndAddAsync(pool, ahead: true);
            }
        }

        Changed();
    }

    public Task RetireAsync(string owner, CancellationToken cancellationToken) =>
        RetireAsync(owner, $"the warm containers of {owner} were retired");

    private async Task RetireAsync(string owner, string reason)
    {
        OwnerPool? pool;
        lock (_owners)
        {
            if (_owners.Remove(owner, out pool))
            {
                pool.Retired = true;
            }
        }

        if (pool is not null)
        {
            await StopAllAsync(pool, reason).ConfigureAwait(false);
        }

        Changed();
    }

    public Task RetireWhereAsync(Func<string, bool> owner, string reason)
    {
        List<string> owners;
        lock (_owners)
        {
            owners = [.. _owners.Keys.Where(owner)];
        }

        return Task.WhenAll(owners.Select(o => RetireAsync(o, reason)));
    }

    /// <inheritdoc />
    /// <remarks>
    /// Looked at until the helper is found, then taken as there: the question is asked twice a task,
    /// and each look was an lstat (docs/benchmarks.md, "The kernel work of a one-file task"). A
    /// helper removed later is said when a container would start with it (<see cref="AcquireAsync"/>).
    /// </remarks>
    public bool CanFork => _helperFound || (_helperFound = File.Exists(_options.WarmHelper));

    private volatile bool _helperFound;

    public IReadOnlyList<WarmPoolStats> Stats()
    {
        lock (_owners)
        {
            return _owners.Values.Select(p =>
            {
                lock (p)
                {
                    // The quota's refusal is said while it keeps the owner below min_warm or a request waits.
                    var held = p.Held is not null && (p.Ready.Count + p.Starting < p.Spec.MinWarm || p.Waiting.Count > 0) ? p.Held : null;
                    return new WarmPoolStats(p.Spec.Owner, p.Ready.Count, p.Ready.Count(c => c.InFlight > 0), p.Starting, p.Waiting.Count, p.Started, p.Replaced, held);
                }
            }).ToList();
        }
    }

    /// <summary>
    /// Waits until the figures satisfy <paramref name="condition"/>, woken by every change in the
    /// pool (a start, a request taken or given back, an idle stop, a replacement), never by a clock.
    /// </summary>
    public async Task WaitForAsync(Func<IReadOnlyList<WarmPoolStats>, bool> condition, CancellationToken cancellationToken)
    {
        while (true)
        {
            var changed = Volatile.Read(ref _changed).Task;
            if (condition(Stats()))
            {
                return;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }

        await _disposed.CancelAsync().ConfigureAwait(false);
        List<OwnerPool> all;
        lock (_owners)
        {
            all = [.. _owners.Values];
            _owners.Clear();
            foreach (var p in all)
            {
                p.Retired = true;
            }
        }

        await _idleWatch.ConfigureAwait(false);
        await Task.WhenAll(all.Select(p => StopAllAsync(p, "the warm pool was shut down"))).ConfigureAwait(false);
        await Task.WhenAll(_stopping.Keys).ConfigureAwait(false);
        _disposed.Dispose();
    }

    internal DockerOptions Options => _options;

    /// <summary>The time the runtime held its containers suspended, which no request's timeout counts.</summary>
    internal SuspensionClock Suspensions => _containers.Suspensions;

    /// <summary>Why a warm container's requests cannot be measured from its cgroup, or null when they can.</summary>
    internal string? Unmeasurable => _containers.Unmeasurable;

    /// <summary>A warm container's own cgroup (it runs directly under our parent), from the root of each hierarchy.</summary>
    internal string CgroupOf(WarmContainer container) => _containers.CgroupOf(container.Id);

    /// <summary>A lease ends: the container serves the next waiter, idles, or is replaced when it broke.</summary>
    internal void Release(OwnerPool pool, WarmContainer container)
    {
        var stop = false;
        lock (pool)
        {
            container.InFlight--;
            if (container.Broken is not null || pool.Retired)
            {
                // The first lease to end on a broken container removes it; others on it (http) have failed with it.
                stop = pool.Ready.Remove(container);
                if (stop && container.Broken is not null && !pool.Retired)
                {
                    pool.Replaced++;
                    EngineMetrics.WarmReplaced(pool.Spec.Owner, "broken");
                    LogReplaced(_log, container.ShortId, pool.Spec.Owner, container.Broken);
                }
            }
            else
            {
                Dispatch(pool, container);
            }

            if (!pool.Retired)
            {
                StartWhatIsNeeded(pool);
            }
        }

        if (stop)
        {
            _ = StopAsync(container, container.Broken ?? "retired");
        }

        Changed();
    }

    /// <summary>Stops a broken container now (a hang, a timeout in http mode), so that its request ends at once.</summary>
    internal async Task KillAsync(WarmContainer container)
    {
        try
        {
            await _containers.KillAsync(container.Id).ConfigureAwait(false);
        }
        catch (PipelinesException)
        {
            // The engine is out of reach: the container is marked broken and is removed once it answers (or by LeftoverCleaner).
        }
    }

    internal Task<string> LogTailAsync(WarmContainer container) => TailAsync(container.Id, container.Spec.Secrets);

    private OwnerPool Owner(WarmSpec spec)
    {
        if (spec.Mode == WarmMode.Fork && !File.Exists(_options.WarmHelper))
        {
            // Looked for again from now on (CanFork): a step that took reuse by default then runs
            // in a container of its own, as it did before the helper was found.
            _helperFound = false;
            throw new PipelinesException($"the fork helper {_options.WarmHelper} is missing: build it with scripts/build-native, or set Docker:WarmHelper (PIPELINES_WARM_HELPER)", retryHelps: false);
        }

        if (spec.Max < 1 || spec.MinWarm < 0 || spec.MinWarm > spec.Max || spec.MaxQueue < 0 || spec.Concurrency < 1 || spec.IdleTimeout <= TimeSpan.Zero)
        {
            throw new PipelinesException($"warm settings of {spec.Owner} are out of range: max {spec.Max} (at least 1), min_warm {spec.MinWarm} (0 to max), max_queue {spec.MaxQueue} (0 or more), concurrency {spec.Concurrency} (at least 1), idle_timeout {spec.IdleTimeout} (above 0)", retryHelps: false);
        }

        lock (_owners)
        {
            if (_owners.TryGetValue(spec.Owner, out var pool))
            {
                if (pool.Spec.ImageId != spec.ImageId || pool.Spec.Mode != spec.Mode || !pool.Spec.Command.SequenceEqual(spec.Command, StringComparer.Ordinal))
                {
                    throw new PipelinesException($"{spec.Owner} already has warm containers of image {pool.Spec.ImageId} in {pool.Spec.Mode} mode; a new version is a new owner (or retire this one first)", retryHelps: false);
                }

                return pool;
            }

            pool = new OwnerPool(spec);
            _owners.Add(spec.Owner, pool);
            return pool;
        }
    }

    /// <summary>Hands a free container to the oldest waiter. Under the pool's lock.</summary>
    private void Dispatch(OwnerPool pool, WarmContainer container)
    {
        while (container.InFlight < container.Capacity && pool.Waiting.First is { } first)
        {
            pool.Waiting.RemoveFirst();
            container.InFlight++;
            container.IdleEpoch++;
            if (!first.Value.TrySetResult(container))
            {
                container.InFlight--;
            }
        }

        if (container.InFlight == 0)
        {
            ArmIdleTimer(pool, container);
        }
    }

    /// <summary>Starts containers for the waiters that free and starting ones will not serve, up to Max, and up to MinWarm. Under the pool's lock.</summary>
    private void StartWhatIsNeeded(OwnerPool pool)
    {
        var spare = pool.Ready.Sum(c => c.Capacity - c.InFlight) + (pool.Starting * Capacity(pool.Spec));
        var wanted = Math.Max(0, (pool.Waiting.Count - spare + Capacity(pool.Spec) - 1) / Capacity(pool.Spec));
        wanted = Math.Max(wanted, pool.Spec.MinWarm - pool.Ready.Count - pool.Starting);
        wanted = Math.Min(wanted, pool.Spec.Max - pool.Ready.Count - pool.Starting);
        for (var i = 0; i < wanted; i++)
        {
            pool.Starting++;
            _ = StartAndAddAsync(pool);
        }
    }

    private static int Capacity(WarmSpec spec) => spec.Mode == WarmMode.Fork ? 1 : Math.Max(1, spec.Concurrency);

    private async Task StartAndAddAsync(OwnerPool pool, bool ahead = false)
    {
        WarmContainer? container = null;
        Exception? failure = null;
        string? slot = null;
        try
        {
            slot = await TakeSlotAsync(pool).ConfigureAwait(false);
            container = await StartAsync(pool.Spec, ahead, _disposed.Token).ConfigureAwait(false);
            container.Slot = slot;
        }
        catch (Exception e)
        {
            failure = e is OperationCanceledException ? new PipelinesException("the warm pool was shut down", retryHelps: true, e) : e;
            if (slot is not null)
            {
                await GiveBackAsync(pool.Spec, slot).ConfigureAwait(false);
            }
        }

        var stop = false;
        lock (pool)
        {
            pool.Starting--;
            if (failure is WarmQuotaException refused)
            {
                pool.Held = refused.Message;
            }
            else if (container is not null)
            {
                pool.Held = null;
            }

            if (container is not null && !pool.Retired)
            {
                pool.Started++;
                pool.Ready.Add(container);
                Dispatch(pool, container);
                _ = WatchAsync(pool, container);
            }
            else if (container is not null)
            {
                stop = true;
            }
            else if (pool.Ready.Count + pool.Starting == 0)
            {
                // Nothing else will serve them: every waiter gets the reason.
                while (pool.Waiting.First is { } first)
                {
                    pool.Waiting.RemoveFirst();
                    first.Value.TrySetException(failure!);
                }
            }
            else if (failure is not WarmQuotaException && pool.Waiting.First is { } oldest)
            {
                // A start refused by the tenant's quota fails no one while a container of the owner will serve them.
                pool.Waiting.RemoveFirst();
                oldest.Value.TrySetException(failure!);
            }
        }

        if (stop)
        {
            await StopAsync(container!, "retired while it started").ConfigureAwait(false);
        }

        if (failure is not null)
        {
            LogStartFailed(_log, pool.Spec.Owner, failure.Message);
        }

        Changed();
    }

    /// <summary>
    /// The tenant's warm-container slot for one container about to start (null when its spec names
    /// no tenant or there are no quotas here); past the quota, <see cref="WarmQuotaException"/>. An
    /// outage of the counters is thrown as it is (retry helps): the request waits it out.
    /// </summary>
    private async Task<string?> TakeSlotAsync(OwnerPool pool)
    {
        if (_quotas is null || pool.Spec.Tenant is not { } tenant)
        {
            return null;
        }

        var slot = $"{pool.Spec.Owner}#{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";
        return await _quotas.TakeWarmAsync(tenant, slot, _disposed.Token).ConfigureAwait(false) is { } refusal
            ? throw new WarmQuotaException(refusal)
            : slot;
    }

    /// <summary>A container's slot back to its tenant (TenantQuotas waits an outage out); never throws.</summary>
    private async Task GiveBackAsync(WarmSpec spec, string slot)
    {
        try
        {
            await _quotas!.EndWarmAsync(spec.Tenant!.Value, slot).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            LogSlotLeft(_log, slot, PipelinesException.Describe(e));
        }
    }

    /// <summary>A container that ends by itself (a crash, an OOM kill of the helper) is removed; a request on it fails through its channel.</summary>
    private async Task WatchAsync(OwnerPool pool, WarmContainer container)
    {
        long code;
        try
        {
            code = await container.Exited.ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or PipelinesException)
        {
            // Shut down, or the engine is out of reach: the container is looked at again when used.
            return;
        }

        var stop = false;
        lock (pool)
        {
            container.Broken ??= $"it ended with exit code {code}";
            if (container.InFlight == 0 && pool.Ready.Remove(container))
            {
                stop = true;
                if (!pool.Retired)
                {
                    pool.Replaced++;
                    EngineMetrics.WarmReplaced(pool.Spec.Owner, "ended");
                    StartWhatIsNeeded(pool);
                }
            }
        }

        if (stop)
        {
            LogReplaced(_log, container.ShortId, pool.Spec.Owner, container.Broken);
            await StopAsync(container, container.Broken).ConfigureAwait(false);
        }

        Changed();
    }

    /// <summary>
    /// Between requests an http-mode server still runs, and may write to its control folder in
    /// the background: every Worker:QuotaPollInterval each container that holds no request is
    /// measured by the rule a request is (<see cref="FolderQuota"/>, against its spec's limits), and one over its quotas is retired,
    /// killed and replaced up to min_warm. A fork-mode container runs only the helper between
    /// requests (it kills whatever a request left), and is measured all the same.
    /// </summary>
    private async Task WatchIdleAsync()
    {
        try
        {
            while (true)
            {
                await Task.Delay(_quotaWatch.Interval, _time, _disposed.Token).ConfigureAwait(false);
                foreach (var (pool, container, epoch) in Idle())
                {
                    (string? Reason, long Bytes) over;
                    try
                    {
                        var quota = FolderQuota.ForWarm(container.Spec.Mode == WarmMode.Fork ? container.OutDir : null, container.ControlDir, container.Spec.Limits);
                        over = quota.Over(_quotaWatch.MinFree, idle: true);
                    }
                    catch (Exception e) when (e is PipelinesException or IOException or UnauthorizedAccessException)
                    {
                        // Its folder went with a stop that came first: nothing to hold.
                        continue;
                    }

                    if (over.Reason is not null)
                    {
                        RetireIdle(pool, container, epoch, over.Reason, over.Bytes);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_disposed.IsCancellationRequested)
        {
            // The pool is shut down: its containers are stopped with it.
        }
    }

    /// <summary>Every fit container that holds no request now, with its idle period's mark.</summary>
    private List<(OwnerPool Pool, WarmContainer Container, long Epoch)> Idle()
    {
        List<OwnerPool> pools;
        lock (_owners)
        {
            pools = [.. _owners.Values];
        }

        var idle = new List<(OwnerPool, WarmContainer, long)>();
        foreach (var pool in pools)
        {
            lock (pool)
            {
                idle.AddRange(pool.Ready.Where(c => c.InFlight == 0 && c.Broken is null).Select(c => (pool, c, c.IdleEpoch)));
            }
        }

        return idle;
    }

    /// <summary>Retires a container found over its quotas while idle, unless a request took it meanwhile (its own watch holds it then).</summary>
    private void RetireIdle(OwnerPool pool, WarmContainer container, long epoch, string reason, long held)
    {
        lock (pool)
        {
            if (pool.Retired || container.InFlight > 0 || container.IdleEpoch != epoch || container.Broken is not null || !pool.Ready.Remove(container))
            {
                return;
            }

            container.Broken = "while it held no request, " + reason;
            pool.Replaced++;
            StartWhatIsNeeded(pool);
        }

        EngineMetrics.WarmReplaced(pool.Spec.Owner, "idle_over_quota");
        LogRetiredIdle(_log, container.ShortId, pool.Spec.Owner, container.Broken, Quantities.FormatSize(held));
        _ = StopAsync(container, container.Broken);
        Changed();
    }

    private void ArmIdleTimer(OwnerPool pool, WarmContainer container)
    {
        var epoch = ++container.IdleEpoch;
        container.IdleTimer?.Dispose();
        container.IdleTimer = _time.CreateTimer(_ => IdleOut(pool, container, epoch), null, pool.Spec.IdleTimeout, Timeout.InfiniteTimeSpan);
    }

    private void IdleOut(OwnerPool pool, WarmContainer container, long epoch)
    {
        lock (pool)
        {
            if (container.IdleEpoch != epoch || container.InFlight > 0 || pool.Ready.Count <= pool.Spec.MinWarm || !pool.Ready.Remove(container))
            {
                return;
            }
        }

        _ = StopAsync(container, "idle");
        Changed();
    }

    private async Task StopAllAsync(OwnerPool pool, string reason)
    {
        List<WarmContainer> containers;
        lock (pool)
        {
            containers = [.. pool.Ready.Where(c => c.InFlight == 0)];
            foreach (var c in pool.Ready)
            {
                c.Broken ??= reason;
            }

            pool.Ready.RemoveAll(c => c.InFlight == 0);
            while (pool.Waiting.First is { } first)
            {
                pool.Waiting.RemoveFirst();
                first.Value.TrySetException(new PipelinesException(reason, retryHelps: true));
            }
        }

        // Busy ones are stopped when their lease ends (Release sees Retired).
        await Task.WhenAll(containers.Select(c => StopAsync(c, reason))).ConfigureAwait(false);
    }

    private Task StopAsync(WarmContainer container, string reason)
    {
        var stop = StopNowAsync(container, reason);
        _stopping.TryAdd(stop, 0);
        _ = stop.ContinueWith(t => _stopping.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return stop;
    }

    private async Task StopNowAsync(WarmContainer container, string reason)
    {
        container.IdleTimer?.Dispose();
        container.Fork?.Dispose();
        container.Http?.Dispose();
        try
        {
            await _containers.RemoveAsync(container.Id).ConfigureAwait(false);
        }
        finally
        {
            // However it went, it serves no one now: its tenant's slot is free for another.
            if (container.Slot is { } slot)
            {
                container.Slot = null;
                await GiveBackAsync(container.Spec, slot).ConfigureAwait(false);
            }
        }

        // No lease holds it (a busy container is stopped when its lease ends): what it kept open is closed.
        container.Dispose();
        DeleteFolder(container.Folder);
        Interlocked.Increment(ref _removed);
        LogStopped(_log, container.ShortId, container.Spec.Owner, reason);
        Changed();
    }

    /// <summary>Containers this pool has removed (idle, broken, retired), for tests that await a removal.</summary>
    internal long Removed => Interlocked.Read(ref _removed);

    private async Task<WarmContainer> StartAsync(WarmSpec spec, bool ahead, CancellationToken cancellationToken)
    {
        var folder = Path.Combine(_options.WarmRoot, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        var socketName = spec.Mode == WarmMode.Fork ? ForkSocket : HttpSocketName;
        var hostSocket = Path.Combine(folder, "run", socketName);
        if (System.Text.Encoding.UTF8.GetByteCount(hostSocket) > UnixSocket.MaxPath)
        {
            throw new PipelinesException($"Docker:WarmRoot {_options.WarmRoot} is too long: a warm container's socket {hostSocket} would be over {UnixSocket.MaxPath} bytes", retryHelps: false);
        }

        Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        ProcessOwner.Mark(folder);
        foreach (var sub in (string[])["in", "out", "steps", "run"])
        {
            Directory.CreateDirectory(Path.Combine(folder, sub));
            File.SetUnixFileMode(Path.Combine(folder, sub), (UnixFileMode)0b111_101_101);
        }

        // The container's user owns /out (it writes there) and the control folder (its socket).
        UnixSocket.Chown(Path.Combine(folder, "out"), _options.User);
        UnixSocket.Chown(Path.Combine(folder, "run"), _options.User);
        File.SetUnixFileMode(Path.Combine(folder, "run"), (UnixFileMode)0b111_000_000);

        var mounts = new List<Mount>
        {
            new(Path.Combine(folder, "run"), WarmLayout.Control, ReadOnly: false),
        };
        IReadOnlyList<string> command;
        var env = new Dictionary<string, string>(spec.Env);
        if (spec.Mode == WarmMode.Fork)
        {
            mounts.Add(new(Path.Combine(folder, "in"), ContainerLayout.In, ReadOnly: true));
            mounts.Add(new(Path.Combine(folder, "out"), ContainerLayout.Out, ReadOnly: false));
            mounts.Add(new(Path.Combine(folder, "steps"), ContainerLayout.Steps, ReadOnly: true));
            mounts.Add(new(_options.WarmHelper, WarmLayout.Helper, ReadOnly: true));
            command = [WarmLayout.Helper, WarmLayout.Control + "/" + ForkSocket];
        }
        else
        {
            command = spec.Command;
            env["PIPELINES_HTTP_SOCKET"] = WarmLayout.HttpSocket;
        }

        var labels = new Dictionary<string, string>(spec.Labels) { [WarmOwnerLabel] = spec.Owner };
        string id;
        var clock = Stopwatch.StartNew();
        try
        {
            id = await _containers.StartAsync(new ContainerSpec(spec.ImageId, command, env, mounts, spec.Resources, labels) { Secrets = spec.Secrets }, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            DeleteFolder(folder);
            throw;
        }

        WarmContainer? container = null;
        try
        {
            var exited = WaitExitAsync(id);
            container = new WarmContainer(id, folder, spec, exited);
            if (spec.Mode == WarmMode.Fork)
            {
                container.OpenFolders();
            }

            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(_options.WarmStartTimeout);
            try
            {
                if (spec.Mode == WarmMode.Fork)
                {
                    container.Fork = await ForkChannel.ConnectAsync(hostSocket, () => exited.IsCompleted, deadline.Token).ConfigureAwait(false);
                }
                else
                {
                    (await UnixSocket.ConnectWhenListeningAsync(hostSocket, () => exited.IsCompleted, deadline.Token).ConfigureAwait(false)).Dispose();
                    container.Http = HttpChannel.Create(hostSocket, container.Capacity);
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new BrokenChannelException($"nothing answered on {WarmLayout.Control}/{socketName} within {_options.WarmStartTimeout.TotalSeconds:0.#} s");
            }

            EngineMetrics.ContainerStarted("warm", clock.Elapsed.TotalSeconds);
            LogStarted(_log, container.ShortId, spec.Owner, spec.Mode, ahead ? ", ahead of its requests" : "");
            return container;
        }
        catch (BrokenChannelException e)
        {
            container?.Dispose();
            var tail = await TailAsync(id, spec.Secrets).ConfigureAwait(false);
            await _containers.RemoveAsync(id).ConfigureAwait(false);
            DeleteFolder(folder);
            throw new PipelinesException($"a warm container of {spec.Owner} did not start: {e.Message}{tail}", retryHelps: false, e);
        }
        catch
        {
            container?.Dispose();
            await _containers.RemoveAsync(id).ConfigureAwait(false);
            DeleteFolder(folder);
            throw;
        }
    }

    private Task<long> WaitExitAsync(string id) => _containers.WaitAsync(id, _disposed.Token);

    /// <summary>The end of a container's own output (the helper's or the server's), its secrets masked as a request's output is (LogMask), as a suffix for an error.</summary>
    private async Task<string> TailAsync(string id, IReadOnlyDictionary<string, string> secrets)
    {
        try
        {
            var log = await _containers.ReadLogAsync(id, 4096, CancellationToken.None).ConfigureAwait(false);
            log = PrintedText.Quotable(LogMask.Apply(log, secrets).Trim());
            return log.Length == 0 ? "" : "; its output ends: " + (log.Length > 2000 ? log[^2000..] : log);
        }
        catch (PipelinesException)
        {
            return "";
        }
    }

    private void DeleteFolder(string folder)
    {
        try
        {
            Storage.NoFollow.DeleteTree(folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PipelinesException)
        {
            LogFolderLeft(_log, folder, e.Message);
        }
    }

    /// <summary>Folders a dead engine process left in WarmRoot (its containers are LeftoverCleaner's).</summary>
    private void RemoveDeadFolders()
    {
        foreach (var folder in Directory.EnumerateDirectories(_options.WarmRoot))
        {
            if (ProcessOwner.IsGone(ProcessOwner.OwnerOf(folder)))
            {
                DeleteFolder(folder);
            }
        }
    }

    private void Changed() => Interlocked.Exchange(ref _changed, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    [LoggerMessage(Level = LogLevel.Information, Message = "warm container {Container} of {Owner} started ({Mode} mode{Ahead})")]
    private static partial void LogStarted(ILogger logger, string container, string owner, WarmMode mode, string ahead);

    [LoggerMessage(Level = LogLevel.Information, Message = "warm container {Container} of {Owner} stopped: {Reason}")]
    private static partial void LogStopped(ILogger logger, string container, string owner, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "warm container {Container} of {Owner} is replaced: {Reason}")]
    internal static partial void LogReplaced(ILogger logger, string container, string owner, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "warm container {Container} of {Owner} is replaced: {Reason}; its folders held {Held}")]
    private static partial void LogRetiredIdle(ILogger logger, string container, string owner, string reason, string held);

    [LoggerMessage(Level = LogLevel.Warning, Message = "a warm container of {Owner} could not start: {Error}")]
    private static partial void LogStartFailed(ILogger logger, string owner, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "the warm-container slot {Slot} could not be given back: {Error}; a dead process's slots are swept by the next acquirer")]
    private static partial void LogSlotLeft(ILogger logger, string slot, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "warm folder {Folder} was left: {Error}")]
    private static partial void LogFolderLeft(ILogger logger, string folder, string error);

    internal ILogger Log => _log;

    /// <summary>One owner's containers and waiters; locked as a whole.</summary>
    internal sealed class OwnerPool(WarmSpec spec)
    {
        public WarmSpec Spec { get; } = spec;

        /// <summary>Started containers, free or busy.</summary>
        public List<WarmContainer> Ready { get; } = [];

        public LinkedList<TaskCompletionSource<WarmContainer>> Waiting { get; } = new();

        public int Starting { get; set; }

        public long Started { get; set; }

        public long Replaced { get; set; }

        public bool Retired { get; set; }

        /// <summary>Why the last start was refused by the tenant's quota WarmContainers; null once a container started.</summary>
        public string? Held { get; set; }

        /// <summary>Requests the containers starting, and those that may still start up to Max, will serve.</summary>
        public int StartsAhead() => (Starting + Math.Max(0, Spec.Max - Ready.Count - Starting)) * Capacity(Spec);

        /// <summary>A fit container with room for one more request, now taken; null when none.</summary>
        public WarmContainer? TakeFree()
        {
            var free = Ready.Where(c => c.Broken is null && c.InFlight < c.Capacity).MinBy(c => c.InFlight);
            if (free is not null)
            {
                free.InFlight++;
                free.IdleEpoch++;
            }

            return free;
        }
    }
}
