using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Pipelines.Telemetry;

/// <summary>
/// The profile of a process's spans behind a debug switch (PIPELINES_PROFILE=1): every span of
/// the engine's activity source is counted and timed (total, mean, largest), and placed on the
/// process's time line (its first start and last end, in seconds since the process started, and
/// for spans met at least ten times the rate between the tenth and the ninetieth percentile of
/// their ends: the steady state, without the ramp and the tail), under a line of the process's
/// allocations, collections, JIT, thread-pool work items (each a hop between threads, a wake-up
/// on a saturated machine) and lock contentions (counts that a loaded machine does not blur as it does
/// times). The table is written to standard
/// error when the profile is disposed. Made to find where a task's milliseconds, and a run's
/// fixed seconds, go (docs/benchmarks.md, "Where a per-file task's time goes", "Where the wall
/// time of a run goes") without an exporter or a tracing back end; costs nothing when the switch
/// is off.
/// </summary>
public sealed class SpanProfile : IDisposable
{
    /// <summary>The width of a time-line bucket: the ends are counted per bucket, not kept one by one, so the profile grows with the run's time, not its tasks.</summary>
    private static readonly long BucketTicks = TimeSpan.FromMilliseconds(10).Ticks;

    private readonly ActivityListener _listener;
    private readonly ConcurrentDictionary<string, Totals> _spans = new(StringComparer.Ordinal);
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly DateTime _processStart = Process.GetCurrentProcess().StartTime.ToUniversalTime();

    private SpanProfile()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == EngineTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = a => _spans.GetOrAdd(a.OperationName, _ => new Totals()).Add(a.Duration, (a.StartTimeUtc - _processStart).Ticks),
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>A profile when PIPELINES_PROFILE is 1 or true, else null.</summary>
    public static SpanProfile? FromEnvironment() =>
        Environment.GetEnvironmentVariable("PIPELINES_PROFILE") is "1" or "true" ? new SpanProfile() : null;

    /// <summary>The table: one line per span name, in the order of their total time.</summary>
    public string Table()
    {
        var sb = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"profile ({_clock.Elapsed.TotalSeconds:0.00} s, {(DateTime.UtcNow - _processStart).TotalSeconds:0.00} s since the process started; ")
            .Append(CultureInfo.InvariantCulture, $"allocated {GC.GetTotalAllocatedBytes() / 1048576.0:0.0} MiB, collections {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)} (gen 0/1/2), GC pauses {GC.GetTotalPauseDuration().TotalMilliseconds:0} ms; ")
            .Append(CultureInfo.InvariantCulture, $"JIT {System.Runtime.JitInfo.GetCompiledMethodCount()} methods in {System.Runtime.JitInfo.GetCompilationTime().TotalMilliseconds:0} ms; ")
            .Append(CultureInfo.InvariantCulture, $"thread-pool work items {ThreadPool.CompletedWorkItemCount}, lock contentions {Monitor.LockContentionCount})\n")
            .Append("  span, count, total ms, mean ms, max ms, first start s, last end s, steady /s\n");
        foreach (var (name, t) in _spans.OrderByDescending(kv => kv.Value.TotalTicks))
        {
            var steady = t.SteadyRate(BucketTicks) is { } r ? r.ToString("0.0", CultureInfo.InvariantCulture) : "";
            sb.Append(CultureInfo.InvariantCulture, $"  {name,-32} {t.Count,8} {t.TotalTicks / (double)TimeSpan.TicksPerMillisecond,12:0.0} {t.TotalTicks / (double)TimeSpan.TicksPerMillisecond / t.Count,9:0.00} {t.MaxTicks / (double)TimeSpan.TicksPerMillisecond,9:0.0} {t.FirstStartTicks / (double)TimeSpan.TicksPerSecond,8:0.000} {t.LastEndTicks / (double)TimeSpan.TicksPerSecond,8:0.000} {steady,8}\n");
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
        private readonly List<int> _endsPerBucket = [];
        private long _count;
        private long _total;
        private long _max;
        private long _firstStart = long.MaxValue;
        private long _lastEnd;

        public long Count => Interlocked.Read(ref _count);

        public long TotalTicks => Interlocked.Read(ref _total);

        public long MaxTicks => Interlocked.Read(ref _max);

        public long FirstStartTicks => Interlocked.Read(ref _firstStart);

        public long LastEndTicks => Interlocked.Read(ref _lastEnd);

        public void Add(TimeSpan d, long start)
        {
            Interlocked.Increment(ref _count);
            Interlocked.Add(ref _total, d.Ticks);
            Raise(ref _max, d.Ticks);
            Raise(ref _lastEnd, start + d.Ticks);
            long seen;
            while (start < (seen = Interlocked.Read(ref _firstStart)) && Interlocked.CompareExchange(ref _firstStart, start, seen) != seen)
            {
            }

            var bucket = (int)Math.Max(0, (start + d.Ticks) / BucketTicks);
            lock (_endsPerBucket)
            {
                while (_endsPerBucket.Count <= bucket)
                {
                    _endsPerBucket.Add(0);
                }

                _endsPerBucket[bucket]++;
            }
        }

        /// <summary>Ends a second between the tenth and the ninetieth percentile of the ends; null under ten spans.</summary>
        public double? SteadyRate(long bucketTicks)
        {
            lock (_endsPerBucket)
            {
                var count = _endsPerBucket.Sum();
                if (count < 10)
                {
                    return null;
                }

                int? from = null, to = null;
                var seen = 0;
                for (var i = 0; i < _endsPerBucket.Count && to is null; i++)
                {
                    seen += _endsPerBucket[i];
                    if (from is null && seen >= count / 10)
                    {
                        from = i;
                    }

                    if (seen >= count * 9 / 10)
                    {
                        to = i;
                    }
                }

                var seconds = (to!.Value - from!.Value + 1) * bucketTicks / (double)TimeSpan.TicksPerSecond;
                return (count * 9 / 10 - count / 10) / seconds;
            }
        }

        private static void Raise(ref long field, long value)
        {
            long seen;
            while (value > (seen = Interlocked.Read(ref field)) && Interlocked.CompareExchange(ref field, value, seen) != seen)
            {
            }
        }
    }
}
