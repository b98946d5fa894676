namespace Pipelines.Containers;

/// <summary>
/// When a running attempt's folders are measured next: every Worker:QuotaPollInterval while they
/// grow slowly, and sooner as a writer nears its quota, so that a fast writer is stopped close
/// to its quota rather than a whole interval past it (at a gigabyte a second, a second is a
/// gigabyte over). The next look comes at half the time the last rate of growth would take to
/// reach the quota, never sooner than <see cref="Shortest"/> (each look walks the folders).
/// </summary>
internal static class QuotaPace
{
    /// <summary>The shortest wait between two looks.</summary>
    public static readonly TimeSpan Shortest = TimeSpan.FromMilliseconds(50);

    /// <summary>The wait before the next look, given the last two measurements (bytes) <paramref name="elapsed"/> apart.</summary>
    public static TimeSpan Next(TimeSpan interval, long maxBytes, long before, long now, TimeSpan elapsed)
    {
        var shortest = Shortest < interval ? Shortest : interval;
        if (now <= before || elapsed <= TimeSpan.Zero)
        {
            return interval;
        }

        var headroom = maxBytes - now;
        if (headroom <= 0)
        {
            return shortest;
        }

        var bytesPerSecond = (now - before) / elapsed.TotalSeconds;
        var half = TimeSpan.FromSeconds(Math.Min(headroom / bytesPerSecond / 2, interval.TotalSeconds));
        return half < shortest ? shortest : half;
    }
}
