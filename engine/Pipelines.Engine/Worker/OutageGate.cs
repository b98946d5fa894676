using Microsoft.Extensions.Logging;

namespace Pipelines.Worker;

/// <summary>
/// Waits outages out for the whole worker. When a job meets an outage (the store, the run
/// store or the Docker engine out of reach) the gate closes: that job waits with backoff and
/// tries again in-process, and jobs this worker takes meanwhile wait at the gate before they
/// claim anything, so one outage neither fails tasks, splits batches nor burns Hangfire's
/// retries on every queued job. The gate opens at the first success. Past
/// <see cref="WorkerOptions.OutageWait"/> a job gives up to Hangfire, whose retry policy and
/// EndWhenJobFails take it from there.
/// </summary>
public sealed partial class OutageGate(WorkerOptions options, TimeProvider time, ILogger<OutageGate> log)
{
    private readonly Lock _lock = new();
    private DateTimeOffset _closedUntil = DateTimeOffset.MinValue;
    private string? _reason;

    /// <summary>An outage (the store, the run store or the Docker engine out of reach): a retry helps, the algorithm is not to blame.</summary>
    public static bool IsOutage(Exception e) => Outage.Is(e);

    /// <summary>Why the gate is closed, or null while it is open (for health reports).</summary>
    public string? Reason
    {
        get
        {
            lock (_lock)
            {
                return _reason;
            }
        }
    }

    /// <summary>Waits while another job of this worker is waiting an outage out.</summary>
    public async Task WaitOpenAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            TimeSpan wait;
            lock (_lock)
            {
                wait = _closedUntil - time.GetUtcNow();
            }

            if (wait <= TimeSpan.Zero)
            {
                return;
            }

            await Task.Delay(wait, time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/>, and again after a backoff (1 s doubling to 60 s) for as long
    /// as it meets an outage and <see cref="WorkerOptions.OutageWait"/> has not passed.
    /// </summary>
    public async Task<T> RunAsync<T>(Func<Task<T>> body, Func<Exception, bool> isOutage, string what, CancellationToken cancellationToken)
    {
        var started = time.GetUtcNow();
        var delay = TimeSpan.FromSeconds(1);
        for (var attempt = 1; ; attempt++)
        {
            await WaitOpenAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var result = await body().ConfigureAwait(false);
                Open();
                return result;
            }
            catch (Exception e) when (isOutage(e) && !cancellationToken.IsCancellationRequested && time.GetUtcNow() - started + delay < options.OutageWait)
            {
                Close(delay, e.Message);
                Telemetry.EngineMetrics.OutageWaited(Telemetry.OutageService.Of(e), delay.TotalSeconds);
                LogPaused(log, what, e.Message, delay.TotalSeconds, attempt);
                await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(60).Ticks));
            }
        }
    }

    private void Close(TimeSpan delay, string reason)
    {
        lock (_lock)
        {
            var until = time.GetUtcNow() + delay;
            if (until > _closedUntil)
            {
                _closedUntil = until;
            }

            _reason = reason;
        }
    }

    private void Open()
    {
        lock (_lock)
        {
            if (_reason is null)
            {
                return;
            }

            _closedUntil = DateTimeOffset.MinValue;
            _reason = null;
        }

        LogResumed(log);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "worker paused: {What}: {Reason}; trying again in {Seconds:0} s (attempt {Attempt}), and taking no new work until then")]
    private static partial void LogPaused(ILogger logger, string what, string reason, double seconds, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "worker resumed: the outage is over")]
    private static partial void LogResumed(ILogger logger);
}
