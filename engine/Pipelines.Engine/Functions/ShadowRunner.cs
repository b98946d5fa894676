using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Algorithms;
using Pipelines.Worker;

namespace Pipelines.Functions;

/// <summary>A request copied for the canary in shadow mode: its staged input and what stable answered.</summary>
internal sealed record ShadowCopy(FunctionVersion To, FunctionInput Input, string Folder, string PrimaryId, string? Caller, AlgorithmRoute Route)
{
    /// <summary>The sha256 of stable's output when it succeeded; null when it failed (a shadow success is then "different").</summary>
    public string? PrimarySha256 { get; init; }
}

/// <summary>
/// Shadow mode's one runner per process: a copy of the request is staged before stable consumes
/// the input, and after stable has answered the caller it waits here to run on the canary, at
/// most Functions:ShadowConcurrency at once, never on the caller's time. At most
/// Functions:ShadowQueue copies are staged or waiting; one more is dropped: counted, logged as a
/// warning and recorded as a refused shadow invocation, never silently. Each copy is recorded
/// (route shadow, shadow_of the caller's invocation) with whether its output's sha256 equalled
/// stable's, then the <see cref="CanaryGuard"/> looks at the shadow figures.
/// </summary>
internal sealed partial class ShadowRunner(
    FunctionInvoker invoker,
    IFunctionStore store,
    CanaryGuard guard,
    FunctionsOptions options,
    WorkerOptions worker,
    TimeProvider time,
    ILogger<ShadowRunner> log) : BackgroundService
{
    private readonly Channel<ShadowCopy> _queue = Channel.CreateUnbounded<ShadowCopy>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });

    // Staged or waiting: the bound of the queue, counted from the staging on so that the copies on disk are bounded too.
    private int _pending;

    private long _dropped;

    /// <summary>Shadow copies this process dropped (queue full, or stopped before they ran).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>
    /// Copies the request's input for the canary before stable's run moves it; null when the
    /// queue is full (the drop is recorded). The copy is given back to <see cref="EnqueueAsync"/> or <see cref="Discard"/>.
    /// </summary>
    public async Task<ShadowCopy?> StageAsync(FunctionVersion to, FunctionInput input, string primaryId, string? caller, AlgorithmRoute route, CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _pending) > options.ShadowQueue)
        {
            Interlocked.Decrement(ref _pending);
            await DropAsync(to, input, primaryId, caller, $"the shadow queue was full (Functions:ShadowQueue = {options.ShadowQueue.ToString(CultureInfo.InvariantCulture)})").ConfigureAwait(false);
            return null;
        }

        var folder = Path.Combine(worker.Scratch, "functions", "shadows", Guid.NewGuid().ToString("N"));
        try
        {
            var inDir = Path.Combine(folder, "in");
            Directory.CreateDirectory(inDir);
            var files = new List<InputPart>();
            foreach (var f in input.Files)
            {
                if (f.Content is not null)
                {
                    // Held in memory: stable's run only reads it, so the canary's can share it.
                    files.Add(f);
                    continue;
                }

                var path = Path.Combine(inDir, f.Name);
                await using (var source = new FileStream(f.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true))
                await using (var target = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync: true))
                {
                    await source.CopyToAsync(target, cancellationToken).ConfigureAwait(false);
                }

                files.Add(new InputPart(f.Name, path, f.Size));
            }

            return new ShadowCopy(to, input with { Folder = inDir, Files = files }, folder, primaryId, caller, route);
        }
        catch
        {
            Interlocked.Decrement(ref _pending);
            FunctionService.DeleteScratch(folder);
            throw;
        }
    }

    /// <summary>Queues a staged copy to run, with stable's answer to compare with.</summary>
    public Task EnqueueAsync(ShadowCopy copy, InvocationOutcome stable)
    {
        var queued = copy with { PrimarySha256 = stable.Succeeded ? stable.OutputSha256 : null };
        return _queue.Writer.TryWrite(queued) ? Task.CompletedTask : DropStagedAsync(queued, "this process is stopping");
    }

    /// <summary>Gives back a staged copy that will not run (stable's run was cancelled or broke), recorded as dropped.</summary>
    public Task Discard(ShadowCopy copy, string why) => DropStagedAsync(copy, why);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await Task.WhenAll(Enumerable.Range(0, options.ShadowConcurrency).Select(_ => RunLoopAsync(stoppingToken))).ConfigureAwait(false);
        }
        finally
        {
            _queue.Writer.TryComplete();
            while (_queue.Reader.TryRead(out var left))
            {
                await DropStagedAsync(left, "this process stopped before the shadow copy ran").ConfigureAwait(false);
            }
        }
    }

    private async Task RunLoopAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                while (_queue.Reader.TryRead(out var copy))
                {
                    await RunAsync(copy, stoppingToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: what is left is recorded as dropped.
        }
    }

    private async Task RunAsync(ShadowCopy copy, CancellationToken ct)
    {
        var id = FunctionService.NewId();
        try
        {
            await store.AddInvocationAsync(FunctionService.Record(id, copy.To, copy.Input, InvocationStatus.Running, false, copy.Caller, time.GetUtcNow(), Routes.Shadow, copy.PrimaryId), ct).ConfigureAwait(false);
            var outDir = Path.Combine(copy.Folder, "out");
            Directory.CreateDirectory(outDir);
            InvocationEnd end;
            try
            {
                var outcome = await invoker.InvokeAsync(copy.To, copy.Input, id, outDir, synchronous: false, ct).ConfigureAwait(false);
                end = outcome.ToEnd() with { ShadowEqual = outcome.Succeeded ? string.Equals(outcome.OutputSha256, copy.PrimarySha256, StringComparison.Ordinal) : null };
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                end = FunctionService.Unforeseen(e);
            }

            await store.FinishAsync(id, end, time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
            await guard.CheckAsync(copy.To, copy.Route, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // An outage of PostgreSQL: the copy's figures are lost, said here.
            LogFailed(log, copy.To.Name, copy.PrimaryId, PipelinesException.Describe(e));
        }
        finally
        {
            Interlocked.Decrement(ref _pending);
            FunctionService.DeleteScratch(copy.Folder);
        }
    }

    private async Task DropStagedAsync(ShadowCopy copy, string why)
    {
        try
        {
            await DropAsync(copy.To, copy.Input, copy.PrimaryId, copy.Caller, why).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _pending);
            FunctionService.DeleteScratch(copy.Folder);
        }
    }

    /// <summary>A shadow copy that does not run is a refused shadow invocation, counted and logged.</summary>
    private async Task DropAsync(FunctionVersion to, FunctionInput input, string primaryId, string? caller, string why)
    {
        var dropped = Interlocked.Increment(ref _dropped);
        LogDropped(log, to.Name, to.AlgorithmVersion ?? "", primaryId, why, dropped);
        try
        {
            var id = FunctionService.NewId();
            await store.AddInvocationAsync(FunctionService.Record(id, to, input, InvocationStatus.Running, false, caller, time.GetUtcNow(), Routes.Shadow, primaryId), CancellationToken.None).ConfigureAwait(false);
            await store.FinishAsync(id, new InvocationEnd(InvocationStatus.Refused, 503, null, null, null, null, 0, null, "shadow copy dropped: " + why), time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            LogFailed(log, to.Name, primaryId, PipelinesException.Describe(e));
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "function {Function}: the shadow copy for {Version} of invocation {Primary} was dropped: {Why} ({Dropped} dropped by this process)")]
    private static partial void LogDropped(ILogger logger, string function, string version, string primary, string why, long dropped);

    [LoggerMessage(Level = LogLevel.Warning, Message = "function {Function}: the shadow copy of invocation {Primary} could not be recorded: {Reason}")]
    private static partial void LogFailed(ILogger logger, string function, string primary, string reason);
}
