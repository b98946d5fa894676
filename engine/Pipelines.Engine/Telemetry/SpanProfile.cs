using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Pipelines.Telemetry;

/// <summary>
/// The profile of a process's spans behind a debug switch (PIPELINES_PROFILE=1): every span of
/// the engine's activity source is counted and timed (total, mean, largest), and the table is
/// written to standard error when the profile is disposed. Made to find where a task's
/// milliseconds go (docs/benchmarks.md, "Where a per-file task's time goes") without an
/// exporter or a tracing back end; costs nothing when the switch is off.
/// </summary>
public sealed class SpanProfile : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentDictionary<string, Totals> _spans = new(StringComparer.Ordinal);
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private SpanProfile()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == EngineTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = a => _spans.GetOrAdd(a.OperationName, _ => new Totals()).Add(a.Duration),
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>A profile when PIPELINES_PROFILE is 1 or true, else null.</summary>
    public static SpanProfile? FromEnvironment() =>
        Environment.GetEnvironmentVariable("PIPELINES_PROFILE") is "1" or "true" ? new SpanProfile() : null;

    /// <summary>The table: one line per span name, in the order of their total time.</summary>
    public string Table()
    {
        var sb = new StringBuilder().Append(CultureInfo.InvariantCulture, $"profile ({_clock.Elapsed.TotalSeconds:0.00} s): span, count, total ms, mean ms, max ms\n");
        foreach (var (name, t) in _spans.OrderByDescending(kv => kv.Value.TotalTicks))
        {
            sb.Append(CultureInfo.InvariantCulture, $"  {name,-32} {t.Count,8} {t.TotalTicks / (double)TimeSpan.TicksPerMillisecond,12:0.0} {t.TotalTicks / (double)TimeSpan.TicksPerMillisecond / t.Count,9:0.00} {t.MaxTicks / (double)TimeSpan.TicksPerMillisecond,9:0.0}\n");
        }

        return sb.ToString();
    }

    public void Dispose()
    {
        _listener.Dispose();
        Console.Error.Write(Table());
    }

    private sealed class Totals
    {
        private long _count;
        private long _total;
        private long _max;

        public long Count => Interlocked.Read(ref _count);

        public long TotalTicks => Interlocked.Read(ref _total);

        public long MaxTicks => Interlocked.Read(ref _max);

        public void Add(TimeSpan d)
        {
            Interlocked.Increment(ref _count);
            Interlocked.Add(ref _total, d.Ticks);
            long seen;
            while (d.Ticks > (seen = Interlocked.Read(ref _max)) && Interlocked.CompareExchange(ref _max, d.Ticks, seen) != seen)
            {
            }
        }
    }
}
