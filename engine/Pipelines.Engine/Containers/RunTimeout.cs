using System.Diagnostics;

namespace Pipelines.Containers;

/// <summary>
/// The one home of the rule that a timeout counts only the time a container could run
/// (docs/harvesting.md, "Timeouts"): the time this process held its containers suspended
/// (<see cref="SuspensionClock"/>) is left out. Used by one-shot steps and by warm requests in
/// fork and http modes alike. <see cref="Expired"/> is cancelled when the timeout has been
/// used up, and <see cref="Hung"/> after a further grace, counted the same way (a frozen helper
/// cannot answer, and is not hung for that).
/// </summary>
internal sealed class RunTimeout : IDisposable
{
    private readonly SuspensionClock _clock;
    private readonly CancellationTokenSource _expired = new();
    private readonly CancellationTokenSource _hung = new();
    private readonly CancellationTokenSource _stop = new();

    public RunTimeout(SuspensionClock clock, TimeSpan timeout, TimeSpan? grace = null)
    {
        _clock = clock;
        Expired = _expired.Token;
        Hung = _hung.Token;
        _ = WatchAsync(timeout, grace, _stop.Token);
    }

    /// <summary>Cancelled once the request or step has had its timeout of time it could run.</summary>
    public CancellationToken Expired { get; }

    /// <summary>Cancelled a grace after <see cref="Expired"/> (never when no grace was given).</summary>
    public CancellationToken Hung { get; }

    /// <summary>
    /// Stops the watch (the step or request ended). The sources are left to the collector: they
    /// hold no timer and no link, and their tokens may still be looked at by whoever took them.
    /// </summary>
    public void Dispose() => _stop.Cancel();

    private async Task WatchAsync(TimeSpan timeout, TimeSpan? grace, CancellationToken stop)
    {
        var clock = Stopwatch.StartNew();
        var suspendedAtStart = _clock.Total;
        // A request's end stops the watch: its waits end without throwing (an exception per request was
        // about 2% of a busy server's CPU, docs/benchmarks.md), and the stop is looked at after each.
        while (true)
        {
            // While held suspended nothing counts: wait for the resume instead of polling.
            await _clock.WhenRunning.WaitAsync(stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (stop.IsCancellationRequested)
            {
                return;
            }

            var ran = clock.Elapsed - (_clock.Total - suspendedAtStart);
            if (!_expired.IsCancellationRequested && ran >= timeout)
            {
                await _expired.CancelAsync().ConfigureAwait(false);
            }

            if (_expired.IsCancellationRequested && (grace is not { } g || ran >= timeout + g))
            {
                if (grace is not null)
                {
                    await _hung.CancelAsync().ConfigureAwait(false);
                }

                return;
            }

            // Look again when the time would be up: part of it may be spent suspended meanwhile.
            var left = (_expired.IsCancellationRequested ? timeout + grace!.Value : timeout) - ran;
            // The request's end (Dispose) ends this wait on its own thread, with no hop to the thread pool (StopWait).
            await StopWait.DelayAsync(TimeSpan.FromTicks(Math.Clamp(left.Ticks, TimeSpan.TicksPerMillisecond, TimeSpan.TicksPerDay)), TimeProvider.System, stop).ConfigureAwait(false);
            if (stop.IsCancellationRequested)
            {
                return;
            }
        }
    }
}
