using System.Diagnostics;
using Pipelines.RunStore;
using Pipelines.Worker;

namespace Pipelines.Cli.Commands;

/// <summary>
/// Follows a run in the run store for `pipelines run`: a blip (PostgreSQL restarting, a dropped
/// connection) is said once and ridden out with backoff, never taken for the run's end; and
/// when no worker is connected at all, it says so instead of waiting in silence.
/// </summary>
internal sealed class RunFollower(IRunStore store, string runId, Func<int>? liveWorkers)
{
    private static readonly TimeSpan NoWorkerGrace = TimeSpan.FromSeconds(10);
    private readonly Stopwatch _sinceWorkerSeen = Stopwatch.StartNew();
    private readonly Stopwatch _sinceWorkerCheck = Stopwatch.StartNew();
    private TimeSpan _backoff = TimeSpan.Zero;
    private string? _outage;
    private bool _saidNoWorker;

    /// <summary>The run and its counts, or null while the run store is out of reach.</summary>
    public async Task<(RunRecord Run, TaskCounts Counts)?> PollAsync(CancellationToken ct)
    {
        try
        {
            var run = await store.GetRunAsync(runId, ct).ConfigureAwait(false)
                ?? throw new PipelinesException($"run {runId} is no longer in the run store", retryHelps: false);
            var counts = await store.CountTasksAsync(runId, ct).ConfigureAwait(false);
            if (_outage is not null)
            {
                Console.Error.WriteLine("the run store answers again; following the run");
                _outage = null;
            }

            _backoff = TimeSpan.Zero;
            CheckWorkers(run, counts);
            return (run, counts);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && OutageGate.IsOutage(e))
        {
            if (_outage is null)
            {
                _outage = e.Message;
                Console.Error.WriteLine($"lost the run store for a moment ({e.GetBaseException().Message}); the run goes on, still following it");
            }

            _backoff = TimeSpan.FromMilliseconds(Math.Clamp(_backoff.TotalMilliseconds * 2, 500, 5000));
            return null;
        }
    }

    /// <summary>How long to wait before the next poll: the usual interval, or the backoff during an outage.</summary>
    public TimeSpan Delay(int usualMilliseconds) => _backoff > TimeSpan.Zero ? _backoff : TimeSpan.FromMilliseconds(usualMilliseconds);

    private void CheckWorkers(RunRecord run, TaskCounts counts)
    {
        if (liveWorkers is null || _sinceWorkerCheck.Elapsed < TimeSpan.FromSeconds(2) || run.State.IsTerminal())
        {
            return;
        }

        _sinceWorkerCheck.Restart();
        if (liveWorkers() > 0)
        {
            _sinceWorkerSeen.Restart();
            if (_saidNoWorker)
            {
                Console.Error.WriteLine("a worker is connected; the run goes on");
                _saidNoWorker = false;
            }
        }
        else if (!_saidNoWorker && _sinceWorkerSeen.Elapsed > NoWorkerGrace)
        {
            Console.Error.WriteLine($"no worker is connected to this database: {counts.Total - counts.Ended} task(s) wait; start one with `pipelines worker` (same PIPELINES_POSTGRES), or run with --local-workers N");
            _saidNoWorker = true;
        }
    }
}
