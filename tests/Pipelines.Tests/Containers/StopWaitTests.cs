using Microsoft.Extensions.Time.Testing;
using Pipelines.Containers;

namespace Pipelines.Tests.Containers;

/// <summary>
/// The wait of a request's watches: its stop ends it on the stopping thread, before Cancel
/// returns (Task.Delay's ended after, through the thread pool: a hop per request), and its
/// timer ends it on time.
/// </summary>
[Unit]
public sealed class StopWaitTests
{
    [Fact]
    public Task A_stop_ends_the_wait_and_runs_the_waiter_on_before_its_cancel_returns() =>
        // On a thread-pool thread, as a request's code runs (xUnit's own synchronization context
        // would have every continuation posted to it, never inlined).
        Task.Run(() =>
        {
            using var stop = new CancellationTokenSource();
            var resumedOn = -1;
            var watch = WatchAsync();
            Assert.False(watch.IsCompleted);

            stop.Cancel();

            Assert.True(watch.IsCompletedSuccessfully);
            Assert.Equal(Environment.CurrentManagedThreadId, resumedOn);

            async Task WatchAsync()
            {
                await StopWait.DelayAsync(TimeSpan.FromHours(1), TimeProvider.System, stop.Token).ConfigureAwait(false);
                resumedOn = Environment.CurrentManagedThreadId;
            }
        });

    [Fact]
    public async Task The_wait_ends_when_its_time_is_up_and_not_before()
    {
        var time = new FakeTimeProvider();
        using var stop = new CancellationTokenSource();
        var wait = StopWait.DelayAsync(TimeSpan.FromSeconds(1), time, stop.Token);

        time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.False(wait.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1));
        await wait.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(wait.IsCompletedSuccessfully);
    }

    [Fact]
    public void A_wait_already_stopped_ends_at_once_without_throwing()
    {
        using var stop = new CancellationTokenSource();
        stop.Cancel();
        Assert.True(StopWait.DelayAsync(TimeSpan.FromHours(1), TimeProvider.System, stop.Token).IsCompletedSuccessfully);
    }
}
