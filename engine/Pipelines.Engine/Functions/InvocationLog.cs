using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pipelines.Queue;
using Pipelines.Tenancy;

namespace Pipelines.Functions;

/// <summary>
/// The function store as a process uses it: every verb passes through to the store, except that
/// a synchronous invocation's record is handed over here when it has ended and written, with the
/// others that ended meanwhile, in one statement by one writer off the request path (Serilog's
/// model: a bounded queue, one consumer). Every read of invocations waits first for the records
/// handed over before it, so this process reads what it has answered (the figures, the canary
/// guard, a client that asks for its invocation at once). The queue is bounded: when the store is
/// out of reach the writer waits it out with backoff, and once the queue is full the next request
/// waits for room rather than lose its record. A process that dies loses the records not yet
/// written, whose answers went to their clients; a stop writes them first. Async invocations never
/// come here: their rows are written before their job is queued and when it ends, as before.
/// </summary>
internal sealed partial class InvocationLog : IFunctionStore, IInvocationBacklog, IHostedService, IAsyncDisposable
{
    /// <summary>Ended records waiting to be written; one more waits for room.</summary>
    public const int Capacity = 10_000;

    /// <summary>The most rows one statement writes.</summary>
    public const int MaxBatch = 1_000;

    /// <summary>
    /// How long the writer gathers records after the first before it writes them, unless a read
    /// waits for them or the process stops. Without it a request every 2 ms (one connection) was a
    /// transaction per request: the database's and this process's CPU, and the wake-ups of its
    /// round trips, per request (docs/benchmarks.md, "A fork request at concurrency 1").
    /// </summary>
    public static readonly TimeSpan Linger = TimeSpan.FromMilliseconds(20);

    private readonly IFunctionStore _store;
    private readonly ILogger<InvocationLog> _log;
    private readonly Channel<Item> _queue = Channel.CreateBounded<Item>(new BoundedChannelOptions(Capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _writer;
    private long _pending;

    // Released when a read waits for the records (a mark) or the queue is closed: the writer stops gathering.
    private readonly SemaphoreSlim _hurry = new(0);
    private volatile bool _closing;

    // Null for the log itself; for a tenant's view of it (For), the log whose queue and writer it uses.
    private readonly InvocationLog? _root;

    public InvocationLog(IFunctionStore store, ILogger<InvocationLog> log)
    {
        (_store, _log) = (store, log);
        _writer = Task.Run(WriteAsync);
    }

    /// <summary>A view: the store's view for its verbs, the log's queue for its reads to wait on.</summary>
    private InvocationLog(InvocationLog root, IFunctionStore scoped) => (_root, _store, _log, _writer) = (root, scoped, root._log, Task.CompletedTask);

    // The log's views, one per tenant, made once: a request's scoping allocates nothing.
    private readonly ConcurrentDictionary<TenantId, InvocationLog> _views = new();

    /// <summary>
    /// The store's view of <paramref name="scope"/>, whose reads still wait for the records this
    /// process handed over before them (they may be the tenant's).
    /// </summary>
    public InvocationLog For(TenantScope scope)
    {
        if (_root is null && scope.Tenant is { } tenant)
        {
            return _views.GetOrAdd(tenant, t => new InvocationLog(this, _store.For(TenantScope.Of(t))));
        }

        // The whole log for all tenants; a view itself for its own tenant, or refused for another (TenantScope.Narrow).
        var scoped = _store.For(scope);
        return ReferenceEquals(scoped, _store) ? this : new InvocationLog(_root ?? this, scoped);
    }

    IFunctionStore IFunctionStore.For(TenantScope scope) => For(scope);

    // The dispatcher's reads and marks go to the store as they are: async invocations are written at once, never batched here.
    public Task<IReadOnlyList<InvocationLoad>> LoadsAsync(CancellationToken cancellationToken) => Backlog.LoadsAsync(cancellationToken);

    public Task<IReadOnlyList<PendingInvocation>> OldestPendingAsync(TenantId tenant, int count, CancellationToken cancellationToken) =>
        Backlog.OldestPendingAsync(tenant, count, cancellationToken);

    public Task MarkReleasedAsync(IReadOnlyList<string> ids, DateTimeOffset now, CancellationToken cancellationToken) =>
        Backlog.MarkReleasedAsync(ids, now, cancellationToken);

    public Task HoldPendingAsync(TenantId tenant, string held, CancellationToken cancellationToken) =>
        Backlog.HoldPendingAsync(tenant, held, cancellationToken);

    private IInvocationBacklog Backlog => _store as IInvocationBacklog
        ?? throw new InvalidOperationException($"the function store {_store.GetType().Name} keeps no async invocations for the dispatcher (IInvocationBacklog)");

    /// <summary>One thing queued: an ended record, or a reader's mark that is set once everything before it is written.</summary>
    private readonly record struct Item(EndedInvocation? Ended, TaskCompletionSource? Written);

    /// <summary>Hands over an ended invocation's record; returns at once unless the queue is full.</summary>
    public async ValueTask RecordAsync(EndedInvocation ended, CancellationToken cancellationToken)
    {
        if (_root is { } root)
        {
            // A record carries its tenant; the log writes it through the whole store.
            await root.RecordAsync(ended, cancellationToken).ConfigureAwait(false);
            return;
        }

        Interlocked.Increment(ref _pending);
        try
        {
            await _queue.Writer.WriteAsync(new Item(ended, null), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ChannelClosedException or OperationCanceledException)
        {
            // Stopping (or the caller gone while it waited for room): written here and now instead.
            Interlocked.Decrement(ref _pending);
            await _store.AddEndedAsync([ended], CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Waits until every record handed over before this call is written.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_root is { } root)
        {
            await root.FlushAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        if (Interlocked.Read(ref _pending) == 0)
        {
            return;
        }

        var written = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite(new Item(null, written)))
        {
            try
            {
                await _queue.Writer.WriteAsync(new Item(null, written), cancellationToken).ConfigureAwait(false);
            }
            catch (ChannelClosedException)
            {
                // Stopping: the writer drains what is queued before it ends.
                await _writer.WaitAsync(cancellationToken).ConfigureAwait(false);
                return;
            }
        }

        Hurry();

        await written.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task WriteAsync()
    {
        var batch = new List<EndedInvocation>(MaxBatch);
        var marks = new List<TaskCompletionSource>();
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            Drain(reader, batch, marks);
            if (marks.Count == 0 && batch.Count < MaxBatch && !_closing)
            {
                // Gather the records that end meanwhile into this statement (Linger); a read that waits cuts it short.
                await _hurry.WaitAsync(Linger).ConfigureAwait(false);
                Drain(reader, batch, marks);
            }

            while (_hurry.CurrentCount > 0 && _hurry.Wait(0))
            {
                // What hurried this batch is written with it.
            }

            await WriteBatchAsync(batch).ConfigureAwait(false);
            Interlocked.Add(ref _pending, -batch.Count);
            batch.Clear();
            foreach (var mark in marks)
            {
                mark.TrySetResult();
            }

            marks.Clear();
        }
    }

    private static void Drain(ChannelReader<Item> reader, List<EndedInvocation> batch, List<TaskCompletionSource> marks)
    {
        while (batch.Count < MaxBatch && reader.TryRead(out var item))
        {
            if (item.Ended is { } ended)
            {
                batch.Add(ended);
            }
            else
            {
                marks.Add(item.Written!);
            }
        }
    }

    /// <summary>The writer stops gathering: a read waits, or the queue is closed.</summary>
    private void Hurry()
    {
        if (_hurry.CurrentCount == 0)
        {
            _hurry.Release();
        }
    }

    /// <summary>One batch, tried until it is written: an outage is waited out (until a stop has waited long enough); any other error is logged with every id it loses.</summary>
    private async Task WriteBatchAsync(List<EndedInvocation> batch)
    {
        if (batch.Count == 0)
        {
            return;
        }

        var wait = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                await _store.AddEndedAsync(batch, CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (IsOutage(e) && !_stopping.IsCancellationRequested)
            {
                LogWaiting(_log, batch.Count, wait.TotalSeconds, PipelinesException.Describe(e));
                try
                {
                    await Task.Delay(wait, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Stopping: one more try below.
                }

                wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
            catch (Exception e)
            {
                LogLost(_log, batch.Count, string.Join(", ", batch.Select(b => b.Started.Id)), PipelinesException.Describe(e));
                return;
            }
        }
    }

    private static bool IsOutage(Exception e) => Outage.Is(e) && e is not OperationCanceledException;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Writes what is queued before the process ends; an outage is waited out until the host's stop gives up.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_root is not null)
        {
            return;
        }

        _queue.Writer.TryComplete();
        _closing = true;
        Hurry();
        await using (cancellationToken.Register(() => _stopping.Cancel()))
        {
            await _writer.ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_root is not null)
        {
            _stopping.Dispose();
            return;
        }

        _queue.Writer.TryComplete();
        _closing = true;
        Hurry();
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _writer.ConfigureAwait(false);
        _stopping.Dispose();
        _hurry.Dispose();
    }

    // Reads of invocations wait for the records handed over before them; the rest passes through.
    public Task<DeployResult> DeployAsync(FunctionSpec spec, string yaml, string imageDigest, string contentSha256, string deployedBy, DateTimeOffset now, CancellationToken cancellationToken) =>
        _store.DeployAsync(spec, yaml, imageDigest, contentSha256, deployedBy, now, cancellationToken);

    public Task<FunctionVersion?> GetAsync(string name, int? version, CancellationToken cancellationToken) => _store.GetAsync(name, version, cancellationToken);

    public Task<IReadOnlyList<FunctionVersion>> ListAsync(CancellationToken cancellationToken) => _store.ListAsync(cancellationToken);

    public Task<IReadOnlyList<FunctionVersion>> VersionsAsync(string name, CancellationToken cancellationToken) => _store.VersionsAsync(name, cancellationToken);

    public async Task<IReadOnlyList<int>> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        // The function's records go with it, those still queued included.
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        return await _store.DeleteAsync(name, cancellationToken).ConfigureAwait(false);
    }

    public Task AddInvocationAsync(InvocationRecord invocation, CancellationToken cancellationToken) => _store.AddInvocationAsync(invocation, cancellationToken);

    public Task<bool> TryStartAsync(string id, FunctionVersion servedBy, string? route, CancellationToken cancellationToken) => _store.TryStartAsync(id, servedBy, route, cancellationToken);

    public Task HoldAsync(string id, string reason, CancellationToken cancellationToken) => _store.HoldAsync(id, reason, cancellationToken);

    public Task<bool> FinishAsync(string id, InvocationEnd end, DateTimeOffset now, CancellationToken cancellationToken) => _store.FinishAsync(id, end, now, cancellationToken);

    public Task<int> AddEndedAsync(IReadOnlyList<EndedInvocation> ended, CancellationToken cancellationToken) => _store.AddEndedAsync(ended, cancellationToken);

    public async Task<InvocationRecord?> GetInvocationAsync(string id, CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        return await _store.GetInvocationAsync(id, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<InvocationRecord>> ListInvocationsAsync(string function, int limit, CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        return await _store.ListInvocationsAsync(function, limit, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<InvocationStats>> StatsAsync(string? function, DateTimeOffset? since, CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        return await _store.StatsAsync(function, since, cancellationToken).ConfigureAwait(false);
    }

    public Task<int> PruneAsync(InvocationRetention retention, DateTimeOffset now, CancellationToken cancellationToken) => _store.PruneAsync(retention, now, cancellationToken);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} invocation record(s) wait to be written: the function store is out of reach ({Reason}); trying again in {Seconds} s")]
    private static partial void LogWaiting(ILogger logger, int count, double seconds, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Count} invocation record(s) were not written and are lost (their answers went to their clients): {Ids}: {Reason}")]
    private static partial void LogLost(ILogger logger, int count, string ids, string reason);
}
