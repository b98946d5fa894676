using Hangfire;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Telemetry;

namespace Pipelines.Queue;

/// <summary>
/// Reads the queue's depth and its oldest job's age from Hangfire's storage every
/// Telemetry:QueueInterval, in the one process that reports them (Telemetry:QueueMetrics), so
/// that a scrape costs the database nothing and a hundred workers do not each count the queue.
/// Two cheap monitoring calls per queue: a count of the jobs not fetched, and the first of them
/// (Hangfire.PostgreSql lists the enqueued jobs by job id, so the first is the oldest). Part of the
/// queue, which alone reads Hangfire's storage; Hosting/EngineGauges reports its figures.
/// </summary>
internal sealed partial class QueueSampler(JobStorage storage, TelemetryOptions options, TimeProvider time, ILogger<QueueSampler> log) : BackgroundService
{
    /// <summary>The queues of the engine's jobs: tasks, gathers and async invocations (default), triggers' reconciliation.</summary>
    public static readonly string[] Queues = ["default", "triggers"];

    private readonly Lock _lock = new();
    private IReadOnlyList<QueueSample> _latest = [];

    /// <summary>The last figures read, one per queue; empty before the first read or after a failed one.</summary>
    public IReadOnlyList<QueueSample> Latest
    {
        get
        {
            lock (_lock)
            {
                return _latest;
            }
        }
    }

    /// <summary>Reads the queues once; public so tests can drive it.</summary>
    public IReadOnlyList<QueueSample> Sample()
    {
        var monitoring = storage.GetMonitoringApi();
        var now = time.GetUtcNow().UtcDateTime;
        var samples = new List<QueueSample>();
        foreach (var queue in Queues)
        {
            var depth = monitoring.EnqueuedCount(queue);
            double age = 0;
            if (depth > 0 && monitoring.EnqueuedJobs(queue, 0, 1).FirstOrDefault().Value?.EnqueuedAt is { } at)
            {
                age = Math.Max(0, (now - DateTime.SpecifyKind(at, DateTimeKind.Utc)).TotalSeconds);
            }

            samples.Add(new QueueSample(queue, depth, age));
        }

        lock (_lock)
        {
            _latest = samples;
        }

        return samples;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.QueueInterval, time);
        do
        {
            try
            {
                Sample();
            }
            catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // The storage is out of reach: no figure is better than a stale one.
                lock (_lock)
                {
                    _latest = [];
                }

                LogSampleFailed(log, e.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "telemetry: the queue could not be read: {Error}")]
    private static partial void LogSampleFailed(ILogger logger, string error);
}

/// <summary>One queue as last read: the jobs waiting in it and how long the oldest has waited, in seconds.</summary>
internal sealed record QueueSample(string Queue, long Depth, double OldestAgeSeconds);
