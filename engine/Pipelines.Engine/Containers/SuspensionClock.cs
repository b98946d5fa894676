using System.Diagnostics;

namespace Pipelines.Containers;

/// <summary>
/// How long this process's containers have been held suspended (docs/harvesting.md), so that a
/// step's or a warm request's timeout counts only the time it could run (<see cref="RunTimeout"/>):
/// suspend and resume act on every container of the process at once, so one clock serves them all.
/// </summary>
public sealed class SuspensionClock
{
    private readonly Lock _lock = new();
    private TimeSpan _before;
    private long? _since;
    private TaskCompletionSource? _resumed;

    /// <summary>Every suspension so far, the current one included.</summary>
    public TimeSpan Total
    {
        get
        {
            lock (_lock)
            {
                return _since is { } since ? _before + Stopwatch.GetElapsedTime(since) : _before;
            }
        }
    }

    /// <summary>Completes when the containers are not (or no longer) held suspended.</summary>
    public Task WhenRunning
    {
        get
        {
            lock (_lock)
            {
                return _resumed?.Task ?? Task.CompletedTask;
            }
        }
    }

    public void Suspended()
    {
        lock (_lock)
        {
            if (_since is null)
            {
                _since = Stopwatch.GetTimestamp();
                _resumed = new(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    public void Resumed()
    {
        TaskCompletionSource? resumed;
        lock (_lock)
        {
            if (_since is { } since)
            {
                _before += Stopwatch.GetElapsedTime(since);
                _since = null;
            }

            (resumed, _resumed) = (_resumed, null);
        }

        resumed?.TrySetResult();
    }
}
