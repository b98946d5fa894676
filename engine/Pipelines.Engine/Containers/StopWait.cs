namespace Pipelines.Containers;

/// <summary>
/// A wait that its stop ends at once, on the thread that stops it. Task.Delay's cancellation
/// queues the waiter's continuation to the thread pool (the waiter resumes after the canceller
/// has returned), so a watch ended at a request's end was a thread-pool hop per request, and
/// the request waited for it before its answer (docs/benchmarks.md, "A fork request at
/// concurrency 1"). Here the waiter resumes inside the stop's Cancel: what a watch does after
/// its wait when stopped must be short (it looks at the stop and returns).
/// </summary>
internal static class StopWait
{
    /// <summary>
    /// Waits <paramref name="delay"/> on <paramref name="time"/>'s clock, or until
    /// <paramref name="stop"/> is cancelled, whichever comes first; never throws for the stop.
    /// </summary>
    public static async Task DelayAsync(TimeSpan delay, TimeProvider time, CancellationToken stop)
    {
        if (stop.IsCancellationRequested)
        {
            return;
        }

        // No RunContinuationsAsynchronously: whoever ends the wait (the timer, or the stop's
        // Cancel) runs the waiter on, on its own thread.
        var done = new TaskCompletionSource();
        using var timer = time.CreateTimer(static s => ((TaskCompletionSource)s!).TrySetResult(), done, delay, Timeout.InfiniteTimeSpan);
        using var registration = stop.UnsafeRegister(static s => ((TaskCompletionSource)s!).TrySetResult(), done);
        await done.Task.ConfigureAwait(false);
    }
}
