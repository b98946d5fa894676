using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Queue;
using Pipelines.RunStore;

namespace Pipelines.Harvest;

/// <summary>
/// Takes only the cycles the machine's owner leaves (docs/harvesting.md). Every
/// <see cref="HarvestOptions.SampleInterval"/> it samples the owner's load and from it decides
/// how many tasks may run (admission: none until the owner has been quiet for StartAfter, then
/// Worker:Concurrency scaled by the idle share), whether our containers are suspended (owner
/// above SuspendAbove for SuspendAfter) or resumed (below StartBelow for ResumeAfter), and
/// which running tasks are vacated (suspended for VacateAfter, or the largest under memory
/// pressure). The policy always admits up to the concurrency and never suspends; never and a
/// drain admit nothing.
/// </summary>
public sealed partial class Harvester : BackgroundService
{
    private const int HistoryPoints = 360;
    private static readonly TimeSpan HistoryStep = TimeSpan.FromSeconds(10);

    private readonly IOwnerLoad _load;
    private readonly HarvestOptions _options;
    private readonly int _concurrency;
    private readonly IContainerSuspender? _suspender;
    private readonly TimeProvider _time;
    private readonly ILogger<Harvester> _log;
    private readonly Lock _lock = new();
    private readonly Queue<HarvestPoint> _history = new();
    private readonly Dictionary<long, Vacatable> _running = [];
    private readonly Func<string> _idleMode;
    private DateTimeOffset _drainLooked = DateTimeOffset.MinValue;
    private string _idleModeSeen;

    // Vacated and not ended yet: until they have, nothing is suspended again, or a container
    // being stopped could be frozen before it stops (and a request would never answer).
    private readonly HashSet<long> _vacating = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _offerChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private OwnerSample? _last;
    private DateTimeOffset? _quietSince;
    private DateTimeOffset? _busySince;
    private DateTimeOffset? _suspendedSince;
    private DateTimeOffset _nextPoint;
    private int _admitted;
    private int _requests;
    private int _vacatedTotal;
    private long _nextId;
    private double _harvestedCpuSeconds;

    /// <summary>
    /// <paramref name="idleMode"/> says how our containers' CPU class is set now (IdleCgroup.Mode,
    /// read again where it depends on a slice systemd makes with the first container): asked at
    /// each round and admission, and a change is logged.
    /// </summary>
    internal Harvester(IOwnerLoad load, HarvestPolicy policy, HarvestOptions options, int concurrency, Func<string> idleMode, IContainerSuspender? suspender, TimeProvider time, ILogger<Harvester> log)
    {
        (_load, Policy, _options, _concurrency, _idleMode, _suspender, _time, _log) = (load, policy, options, Math.Max(1, concurrency), idleMode, suspender, time, log);
        _idleModeSeen = idleMode();

        // The first sample covers the time since boot: taken now, so the first real interval is one interval long.
        _load.Sample();
        _nextPoint = time.GetUtcNow();
    }

    /// <summary>The policy in force.</summary>
    public HarvestPolicy Policy { get; }

    /// <summary>How our containers' CPU class is set (IdleCgroup.Mode), as last read: said in the start line, on /readyz, in the metrics and the workers' figures.</summary>
    public string IdleMode
    {
        get
        {
            lock (_lock)
            {
                return _idleModeSeen;
            }
        }
    }

    /// <summary>
    /// Reads how our containers' CPU class is set, and logs a change: a when-idle worker whose
    /// containers would run without the idle class says so as a warning that names the fix.
    /// </summary>
    private void ReadIdleMode()
    {
        var mode = _idleMode();
        lock (_lock)
        {
            if (mode == _idleModeSeen)
            {
                return;
            }

            _idleModeSeen = mode;
        }

        if (Policy == HarvestPolicy.WhenIdle && IdleCgroup.RunsWithoutClass(mode))
        {
            LogIdleClassOff(_log, mode);
        }
        else
        {
            LogIdleClassNow(_log, mode);
        }
    }

    /// <summary>How long a delivered task waits for room before it is handed back.</summary>
    public TimeSpan AdmissionHold => _options.AdmissionHold;

    /// <summary>Why no task may start now, for the log.</summary>
    public string Why()
    {
        lock (_lock)
        {
            return Draining ? "this worker is draining"
                : Policy == HarvestPolicy.Never ? "Harvest:Policy is never"
                : _suspendedSince is not null ? "the owner is busy and our containers are suspended"
                : _last is null || _quietSince is null ? $"the owner's load ({_last?.OwnerFraction ?? 0:P0}) is above Harvest:StartBelow ({_options.StartBelow:P0})"
                : _admitted >= Allowed() && Allowed() > 0 ? $"all {Allowed()} slot(s) the owner leaves are taken"
                : $"the owner has been quiet for less than Harvest:StartAfter ({_options.StartAfter.TotalSeconds:0} s)";
        }
    }

    /// <summary>Whether a drain was asked for: running tasks finish, no new one starts.</summary>
    public bool Draining { get; private set; }

    /// <summary>
    /// Whether a drain has been asked for this worker where it is asked (HarvestBoard: Hangfire's
    /// storage), looked at just before each task or request is admitted, so that none is admitted
    /// once the request is written: a drain seen only at the board's next round (every 10 s)
    /// let tasks start meanwhile. It costs one read of the storage per admission. Null: only
    /// <see cref="Drain"/> drains.
    /// </summary>
    public Func<bool>? DrainRequested { get; init; }

    /// <summary>Completes when this worker drains, so that its figures are published at once.</summary>
    public Task Drained => _drained.Task;

    /// <summary>The policy's name as written in configuration.</summary>
    public static string Name(HarvestPolicy policy) => policy switch
    {
        HarvestPolicy.WhenIdle => "when-idle",
        HarvestPolicy.Never => "never",
        _ => "always",
    };

    /// <summary>Reads a policy as written in configuration or on the command line (unset: <paramref name="fallback"/>); a clear error for anything else.</summary>
    public static HarvestPolicy Parse(string? text, HarvestPolicy fallback) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" => fallback,
        "always" => HarvestPolicy.Always,
        "when-idle" or "whenidle" => HarvestPolicy.WhenIdle,
        "never" => HarvestPolicy.Never,
        _ => throw new PipelinesException($"Harvest:Policy '{text}': write always, when-idle or never", retryHelps: false),
    };

    /// <summary>What the worker shows: the latest sample, our tasks, and the last hour.</summary>
    public HarvestStatus Status()
    {
        lock (_lock)
        {
            return new HarvestStatus(
                Name(Policy),
                Draining,
                _idleModeSeen,
                _last,
                _admitted,
                _requests,
                _suspendedSince is null ? 0 : _admitted + _requests,
                _vacatedTotal,
                Allowed(),
                _harvestedCpuSeconds,
                [.. _history]);
        }
    }

    /// <summary>Why a task would wait for admission here (RunStore/HoldReasons): a drain, the policy never, or the owner's load.</summary>
    public string HoldReason => Draining ? HoldReasons.Drain : Policy == HarvestPolicy.Never ? HoldReasons.Policy : HoldReasons.OwnerLoad;

    /// <summary>
    /// What this worker offers the queue now (posted by <see cref="HarvestBoard"/>; the dispatcher's
    /// capacity is the live workers' offers, Queue/WorkerSlots): the tasks it would admit and,
    /// when fewer than its concurrency, why, in the words a held task gets.
    /// </summary>
    public WorkerOffer Offer()
    {
        int allowed;
        lock (_lock)
        {
            allowed = Allowed();
        }

        return allowed < _concurrency
            ? new WorkerOffer(allowed, HoldReason, Why(), _time.GetUtcNow())
            : new WorkerOffer(allowed, null, null, _time.GetUtcNow());
    }

    /// <summary>
    /// Completes when the offer may have changed: at the next sample or a drain (<see cref="Offer"/>
    /// reads nothing else). Not at an admission or a slot given back, which leave the offer as it
    /// was: the board (HarvestBoard) waited on those too, and was woken on the thread pool at
    /// every task's end to find its offer the same.
    /// </summary>
    public Task OfferChanged
    {
        get
        {
            lock (_lock)
            {
                return _offerChanged.Task;
            }
        }
    }

    /// <summary>Finish what runs and take nothing new (pipelines worker --drain, or the API).</summary>
    public void Drain()
    {
        lock (_lock)
        {
            if (Draining)
            {
                return;
            }

            Draining = true;
        }

        LogDrain(_log);
        _drained.TrySetResult();
        SignalOffer();
    }

    /// <summary>
    /// Waits for room for one task for at most <paramref name="hold"/>: a slot to dispose when the
    /// task is done, or null when there was no room (the caller hands the task back to the queue
    /// for another machine rather than keep it from them).
    /// </summary>
    public Task<IDisposable?> AdmitAsync(TimeSpan hold, CancellationToken cancellationToken)
    {
        ReadIdleMode();
        return WaitForRoomAsync(
            () =>
            {
                if (_admitted >= Allowed())
                {
                    return null;
                }

                _admitted++;
                return new Slot(this);
            },
            hold,
            cancellationToken,
            room: () => _admitted < Allowed());
    }

    /// <summary>
    /// Waits for at most <paramref name="hold"/> until a task could be admitted, taking nothing:
    /// true when there is room. A worker that has just handed a task back waits here before it
    /// fetches again, or its free Hangfire worker, first at the queue, would fetch the very job it
    /// handed back, again and again, while the other machines poll once a second and lose the race.
    /// </summary>
    public async Task<bool> RoomAsync(TimeSpan hold, CancellationToken cancellationToken) =>
        await WaitForRoomAsync(() => _admitted < Allowed() ? NoSlot.Instance : null, hold, cancellationToken, room: null).ConfigureAwait(false) is not null;

    /// <summary>
    /// Waits for at most <paramref name="hold"/> for the owner to leave room for one function
    /// request (docs/harvesting.md): null without room (the caller answers 503). A request takes
    /// no task slot (each function's max, concurrency and queue bound its requests), but while
    /// it runs it counts as ours: a busy owner suspends our containers, and one suspended for
    /// VacateAfter (or the largest under memory pressure) is vacated: <paramref name="vacate"/> is cancelled.
    /// </summary>
    public Task<IDisposable?> AdmitRequestAsync(CancellationTokenSource vacate, Func<long> memory, TimeSpan hold, CancellationToken cancellationToken)
    {
        ReadIdleMode();
        return WaitForRoomAsync(
            () =>
            {
                if (Allowed() == 0)
                {
                    return null;
                }

                _requests++;
                var id = ++_nextId;
                _running[id] = new Vacatable(vacate, memory);
                return new Request(this, id);
            },
            hold,
            cancellationToken,
            room: () => Allowed() > 0,
            lookedWithin: RequestDrainLook);
    }

    /// <summary>
    /// How long a look at the drain request answers for function requests: at most one read of
    /// the storage per this, not one per request (a read per request was a PostgreSQL round trip
    /// on each one's path, about 5% of a busy server's time). A task's admission always reads.
    /// </summary>
    public static readonly TimeSpan RequestDrainLook = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Registers a running step that can be vacated; <paramref name="vacate"/> is cancelled when
    /// the harvester vacates it, with <paramref name="memory"/> telling how large it is now.
    /// </summary>
    public IDisposable Running(CancellationTokenSource vacate, Func<long> memory)
    {
        lock (_lock)
        {
            var id = ++_nextId;
            _running[id] = new Vacatable(vacate, memory);
            return new Registration(this, id);
        }
    }

    /// <summary>One sampling round; public so tests can drive it without waiting for the loop.</summary>
    public async Task TickAsync(CancellationToken cancellationToken)
    {
        ReadIdleMode();
        var sample = _load.Sample();
        var now = sample.At;
        bool suspend = false, resume = false;
        List<KeyValuePair<long, Vacatable>> vacate = [];
        lock (_lock)
        {
            var interval = _last is null ? _options.SampleInterval : now - _last.At;
            _last = sample;
            _harvestedCpuSeconds += sample.OursCpu * interval.TotalSeconds;
            var quiet = sample.OwnerFraction < _options.StartBelow;
            _quietSince = quiet ? _quietSince ?? now : null;
            _busySince = sample.OwnerFraction > _options.SuspendAbove ? _busySince ?? now : null;
            if (Policy == HarvestPolicy.WhenIdle)
            {
                if (_suspendedSince is null && _busySince is { } busy && now - busy >= _options.SuspendAfter && _admitted + _requests > 0 && _vacating.Count == 0)
                {
                    _suspendedSince = now;
                    suspend = true;
                }
                else if (_suspendedSince is { } since)
                {
                    if (_quietSince is { } q && now - q >= _options.ResumeAfter)
                    {
                        _suspendedSince = null;
                        resume = true;
                    }
                    else if (now - since >= _options.VacateAfter && _running.Count > 0)
                    {
                        vacate.AddRange(_running);
                        _suspendedSince = null;
                        resume = true;
                    }
                }

                if (sample.FreeMemoryFraction < _options.MinFreeMemory && _running.Count > 0 && vacate.Count == 0)
                {
                    vacate.Add(_running.MaxBy(r => r.Value.Memory()));
                }

                foreach (var (id, _) in vacate)
                {
                    _running.Remove(id);
                    _vacating.Add(id);
                }
            }

            if (now >= _nextPoint)
            {
                _history.Enqueue(new HarvestPoint(now, sample.OwnerCpu, sample.OursCpu, sample.OwnerMemory, _admitted, _suspendedSince is null ? 0 : _admitted + _requests, _vacatedTotal + vacate.Count));
                while (_history.Count > HistoryPoints)
                {
                    _history.Dequeue();
                }

                _nextPoint = now + HistoryStep;
            }
        }

        if (suspend && _suspender is not null)
        {
            var n = await _suspender.SuspendAllAsync(cancellationToken).ConfigureAwait(false);
            LogSuspended(_log, n, sample.OwnerFraction);
        }

        // Resumed first, then vacated: the engine neither kills nor removes a frozen container
        // cleanly, so it thaws for the moment the kill takes.
        if (resume && _suspender is not null)
        {
            var n = await _suspender.ResumeAllAsync(cancellationToken).ConfigureAwait(false);
            LogResumed(_log, n, vacate.Count);
        }

        foreach (var (_, v) in vacate)
        {
            await v.Vacate.CancelAsync().ConfigureAwait(false);
            lock (_lock)
            {
                _vacatedTotal++;
            }
        }

        SignalOffer();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (Policy == HarvestPolicy.WhenIdle && IdleCgroup.RunsWithoutClass(IdleMode))
        {
            LogIdleClassOff(_log, IdleMode);
        }
        else
        {
            LogStarted(_log, Name(Policy), IdleMode);
        }

        using var timer = new PeriodicTimer(_options.SampleInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await TickAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    // A sample that cannot be read or an engine out of reach for a moment: the
                    // next round tries again; what runs goes on as it was.
                    LogTickFailed(_log, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: a suspended container must not stay frozen after us.
            if (_suspender is not null)
            {
                await _suspender.ResumeAllAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Takes what <paramref name="take"/> gives (under the lock) as soon as it gives something,
    /// waiting at most <paramref name="hold"/>. Where something would be taken
    /// (<paramref name="room"/>), whether a drain was asked is looked at first.
    /// </summary>
    private async Task<IDisposable?> WaitForRoomAsync(Func<IDisposable?> take, TimeSpan hold, CancellationToken cancellationToken, Func<bool>? room, TimeSpan? lookedWithin = null)
    {
        var deadline = _time.GetUtcNow() + hold;
        while (true)
        {
            if (room is not null && DrainWasAsked(room, lookedWithin))
            {
                Drain();
            }

            Task changed;
            lock (_lock)
            {
                if (take() is { } taken)
                {
                    return taken;
                }

                changed = _changed.Task;
            }

            var left = deadline - _time.GetUtcNow();
            if (left <= TimeSpan.Zero)
            {
                return null;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(left);
            try
            {
                await changed.WaitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // The hold is over: look once more, then give up.
            }
        }
    }

    /// <summary>
    /// Whether a drain not yet seen here has been asked, looked at only when there is room (an
    /// admission would follow). The storage out of reach is not a drain: admission goes on, and
    /// the board's next round looks again.
    /// </summary>
    private bool DrainWasAsked(Func<bool> room, TimeSpan? lookedWithin)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            // A look that found a drain drained at once (Draining): a recent look can only have said no.
            if (DrainRequested is null || Draining || !room() || (lookedWithin is { } within && now - _drainLooked < within))
            {
                return false;
            }

            _drainLooked = now;
        }

        try
        {
            return DrainRequested();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogDrainUnknown(_log, e.Message);
            return false;
        }
    }

    /// <summary>How many tasks may run now.</summary>
    private int Allowed()
    {
        if (Draining || Policy == HarvestPolicy.Never)
        {
            return 0;
        }

        if (Policy == HarvestPolicy.Always)
        {
            return _concurrency;
        }

        if (_suspendedSince is not null || _last is null || _quietSince is not { } quiet || _last.At - quiet < _options.StartAfter)
        {
            return 0;
        }

        // Concurrency follows the idle share: all of it on an idle machine, fewer as the owner takes more.
        return Math.Clamp((int)Math.Ceiling(_concurrency * (1 - _last.OwnerFraction)), 1, _concurrency);
    }

    private void Signal() => Fire(ref _changed);

    /// <summary>A change of the offer (a sample, a drain): also a change for who waits for room.</summary>
    private void SignalOffer()
    {
        Fire(ref _offerChanged);
        Signal();
    }

    /// <summary>Completes what waits on <paramref name="signal"/>, which a new one replaces for the next change.</summary>
    private void Fire(ref TaskCompletionSource signal)
    {
        TaskCompletionSource old;
        lock (_lock)
        {
            old = signal;
            signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        old.TrySetResult();
    }

    private void Release()
    {
        lock (_lock)
        {
            _admitted--;
        }

        Signal();
    }

    private sealed record Vacatable(CancellationTokenSource Vacate, Func<long> Memory);

    private sealed class NoSlot : IDisposable
    {
        public static readonly NoSlot Instance = new();

        public void Dispose()
        {
        }
    }

    private sealed class Slot(Harvester owner) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                owner.Release();
            }
        }
    }

    private sealed class Request(Harvester owner, long id) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                lock (owner._lock)
                {
                    owner._requests--;
                    owner._running.Remove(id);
                    owner._vacating.Remove(id);
                }

                owner.Signal();
            }
        }
    }

    private sealed class Registration(Harvester owner, long id) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._lock)
            {
                owner._running.Remove(id);
                owner._vacating.Remove(id);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "harvesting: policy {Policy}, containers {Mode}")]
    private static partial void LogStarted(ILogger logger, string policy, string mode);

    [LoggerMessage(Level = LogLevel.Warning, Message = "harvesting: policy when-idle, but our containers run without the idle class, so they compete with the machine's owner: {Mode}")]
    private static partial void LogIdleClassOff(ILogger logger, string mode);

    [LoggerMessage(Level = LogLevel.Information, Message = "harvesting: containers {Mode}")]
    private static partial void LogIdleClassNow(ILogger logger, string mode);

    [LoggerMessage(Level = LogLevel.Information, Message = "harvesting: the owner is busy ({Load:P0}): {Count} container(s) suspended")]
    private static partial void LogSuspended(ILogger logger, int count, double load);

    [LoggerMessage(Level = LogLevel.Information, Message = "harvesting: {Count} container(s) resumed, {Vacated} task(s) vacated")]
    private static partial void LogResumed(ILogger logger, int count, int vacated);

    [LoggerMessage(Level = LogLevel.Warning, Message = "harvesting: draining: running tasks finish, no new task starts")]
    private static partial void LogDrain(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "harvesting: whether a drain was asked could not be read before an admission: {Error}")]
    private static partial void LogDrainUnknown(ILogger logger, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "harvesting: a sampling round failed: {Error}")]
    private static partial void LogTickFailed(ILogger logger, string error);
}

/// <summary>A worker's harvesting figures (API, `pipelines workers`, the dashboard): Running counts tasks, Requests function requests, Suspended both.</summary>
public sealed record HarvestStatus(
    string Policy,
    bool Draining,
    string IdleMode,
    OwnerSample? Latest,
    int Running,
    int Requests,
    int Suspended,
    int Vacated,
    int Allowed,
    double HarvestedCpuSeconds,
    IReadOnlyList<HarvestPoint> History);
