using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Queue;

namespace Pipelines.Harvest;

/// <summary>
/// The workers' harvesting figures, shared through the queue's workers' board
/// (<see cref="IWorkerBoard"/>: PostgreSQL, or memory in the embedded mode), so that the API,
/// the dashboard and `pipelines workers` on any machine see every worker: each worker posts its
/// <see cref="HarvestStatus"/> and what it offers the queue (<see cref="Harvester.Offer"/>, the
/// dispatcher's capacity) every 10 s and as soon as the offer changes, to expire 2 minutes after
/// its last post (a dead worker drops out), and reads there whether a drain was asked for it (`pipelines worker
/// --drain`, POST /api/workers/{name}/drain): at every round, and, through
/// <see cref="DrainAsked"/>, just before each admission. A drain is published at once.
/// </summary>
public sealed partial class HarvestBoard(IWorkerBoard board, Harvester harvester, string workerName, TimeProvider time, ILogger<HarvestBoard> log) : BackgroundService
{
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Expiry = TimeSpan.FromMinutes(2);

    /// <summary>The least time between two posts for a changed offer: an owner's load that hovers at a bound changes it at every sample.</summary>
    private static readonly TimeSpan OfferGap = TimeSpan.FromSeconds(2);

    private int _posted = -1;
    private DateTimeOffset _postedAt;

    /// <summary>Every live worker's latest figures, by name.</summary>
    public static IReadOnlyList<(string Worker, HarvestStatus Status)> Read(IWorkerBoard board)
    {
        var list = new List<(string, HarvestStatus)>();
        foreach (var (name, json) in board.Read())
        {
            if (JsonSerializer.Deserialize(json, HarvestJson.Default.HarvestStatus) is { } status)
            {
                list.Add((name, status));
            }
        }

        return list;
    }

    /// <summary>Asks the named workers to drain; returns the names of those that are live. Once it returns, none of them admits a new task.</summary>
    public static IReadOnlyList<string> RequestDrain(IWorkerBoard board, Func<string, bool> which)
    {
        var names = board.Read().Select(w => w.Worker).Where(which).ToList();
        foreach (var name in names)
        {
            board.AskDrain(name);
        }

        return names;
    }

    /// <summary>Whether a drain was asked for <paramref name="worker"/> (one read of the board).</summary>
    public static bool DrainAsked(IWorkerBoard board, string worker) => board.DrainAsked(worker);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                Publish();
            }
            catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // The storage is out of reach for a moment: the figures are late, nothing else.
                LogPublishFailed(log, e.Message);
            }

            // The next round, or at once when this worker drains (so that `pipelines worker --drain`
            // sees it) or offers another number of slots (so that the dispatcher releases no task
            // to a worker whose owner took it back, and some as soon as the owner leaves).
            var next = Task.Delay(Every, time, stoppingToken);
            var draining = harvester.Draining;
            while (!next.IsCompleted && harvester.Draining == draining && (harvester.Offer().Slots == _posted || time.GetUtcNow() - _postedAt < OfferGap))
            {
                var changed = harvester.OfferChanged;
                await Task.WhenAny(next, draining ? next : harvester.Drained, changed).ConfigureAwait(false);
            }

            if (next.IsCanceled)
            {
                return;
            }
        }
    }

    private void Publish()
    {
        if (!harvester.Draining && board.DrainAsked(workerName))
        {
            harvester.Drain();
        }

        // Taken as posted before the post: a post that fails is tried again at the next round, not at once.
        var offer = harvester.Offer();
        (_posted, _postedAt) = (offer.Slots, time.GetUtcNow());
        board.Post(workerName, JsonSerializer.Serialize(harvester.Status(), HarvestJson.Default.HarvestStatus), offer, Expiry);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "harvesting: could not publish this worker's figures: {Error}")]
    private static partial void LogPublishFailed(ILogger logger, string error);
}
