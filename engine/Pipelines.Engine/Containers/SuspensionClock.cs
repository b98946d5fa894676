using System.Diagnostics;

namespace Pipelines.Containers;

/// <summary>
/// How long this process's containers have been held suspended (docs/harvesting.md), so that a
/// step's timeout counts only the time it could run: suspend and resume act on every container of
/// the process at once, so one clock serves them all.
/// </summary>
internal sealed class SuspensionClock
{
    private readonly Lock _lock = new();
    private TimeSpan _before;
    private long? _since;

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

    public void Suspended()
    {
        lock (_lock)
        {
            _since ??= Stopwatch.GetTimestamp();
        }
    }

    public void Resumed()
    {
        lock (_lock)
        {
            if (_since is { } since)
            {
                _before += Stopwatch.GetElapsedTime(since);
                _since = null;
            }
        }
    }
}
