using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Queue;

namespace Pipelines.Harvest;

/// <summary>
/// The workers' harvesting figures, shared through the queue's workers' board
/// (<see cref="IWorkerBoard"/>: PostgreSQL, or memory in the embedded mode), so that the API,
/// the dashboard and `pipelines workers` on any machine see every worker: each worker posts its
/// <see cref="HarvestStatus"/> every 10 s, to expire 2 minutes after its last post (a dead
/// worker drops out), and reads there whether a drain was asked for it (`pipelines worker
/// --drain`, POST /api/workers/{name}/drain): at every round, and, through
/// <see cref="DrainAsked"/>, just before each admission. A drain is published at once.
/// </summary>
public sealed partial class HarvestBoard(IWorkerBoard board, Harvester harvester, string workerName, TimeProvider time, ILogger<HarvestBoard> log) : BackgroundService
{
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Expiry = TimeSpan.FromMinutes(2);

    /// <summary>Every live worker's latest figures, by name.</summary>
    public static IReadOnlyList<(string Worker, HarvestStatus Status)> Read(IWorkerBoard board)
    {
        var list = new List<(string, HarvestStatus)>();
        foreach (var (name, json) in board.Read())
        {
            if (JsonSerializer.Deserialize<HarvestStatus>(json) is { } status)
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
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The storage is out of reach for a moment: the figures are late, nothing else.
                LogPublishFailed(log, e.Message);
            }

            // The next round, or at once when this worker drains, so that `pipelines worker --drain` sees it.
            var next = Task.Delay(Every, time, stoppingToken);
            await Task.WhenAny(next, harvester.Draining ? next : harvester.Drained).ConfigureAwait(false);
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

        board.Post(workerName, JsonSerializer.Serialize(harvester.Status()), Expiry);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "harvesting: could not publish this worker's figures: {Error}")]
    private static partial void LogPublishFailed(ILogger logger, string error);
}
