namespace Pipelines.Worker;

/// <summary>
/// The stop of a loop that waits, then calls the run store (a lease's renewal, an attempt's
/// cancel watch), ended when its task or attempt ends. Most of the time the loop is in its wait:
/// then the stop cancels on the caller's thread, the wait returns there, and the loop has ended
/// before the caller goes on, with no hop to the thread pool and back (CancelAsync's) at every
/// end. While the loop is in its store call the stop cancels on the thread pool, as before: the
/// call's cancellation may go to the database (Npgsql sends a cancel request on a connection of
/// its own), which must not hold the caller. Once stopping, the loop starts no further call.
/// </summary>
internal sealed class LoopStop : IDisposable
{
    private const int Waiting = 0;
    private const int Calling = 1;
    private const int Stopped = 2;

    private readonly CancellationTokenSource _source = new();
    private int _state;

    /// <summary>Cancelled when the loop is to stop.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>Whether the loop may make its call now (false: it is stopping, and returns); <see cref="EndCall"/> after it.</summary>
    public bool TryCall() => Interlocked.CompareExchange(ref _state, Calling, Waiting) == Waiting;

    /// <summary>The call is over: the loop goes back to its wait (unless it was stopped meanwhile).</summary>
    public void EndCall() => Interlocked.CompareExchange(ref _state, Waiting, Calling);

    /// <summary>Stops the loop: on this thread when it is waiting, else on the thread pool.</summary>
    public Task StopAsync()
    {
        if (Interlocked.Exchange(ref _state, Stopped) == Calling)
        {
            return _source.CancelAsync();
        }

        _source.Cancel();
        return Task.CompletedTask;
    }

    public void Dispose() => _source.Dispose();
}
