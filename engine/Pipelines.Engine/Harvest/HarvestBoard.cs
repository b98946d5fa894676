using System.Text.Json;
using Hangfire;
using Hangfire.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Pipelines.Harvest;

/// <summary>
/// The workers' harvesting figures, shared through Hangfire's storage (PostgreSQL, or memory in
/// the embedded mode), so that the API, the dashboard and `pipelines workers` on any machine
/// see every worker: each worker writes its <see cref="HarvestStatus"/> every 10 s to a hash
/// that expires 2 minutes after its last write (a dead worker drops out), and reads there
/// whether a drain was asked for it (`pipelines worker --drain`, POST /api/workers/{name}/drain):
/// at every round, and, through <see cref="DrainAsked"/>, just before each admission. A drain
/// is published at once.
/// </summary>
public sealed partial class HarvestBoard(JobStorage storage, Harvester harvester, string workerName, TimeProvider time, ILogger<HarvestBoard> log) : BackgroundService
{
    private const string Workers = "pipelines:harvest-workers";
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Expiry = TimeSpan.FromMinutes(2);

    /// <summary>Every live worker's latest figures, by name.</summary>
    public static IReadOnlyList<(string Worker, HarvestStatus Status)> Read(JobStorage storage)
    {
        using var connection = storage.GetConnection();
        var list = new List<(string, HarvestStatus)>();
        foreach (var name in connection.GetAllItemsFromSet(Workers).Order(StringComparer.Ordinal))
        {
            var entries = connection.GetAllEntriesFromHash(Key(name));
            if (entries is not null && entries.TryGetValue("status", out var json) && JsonSerializer.Deserialize<HarvestStatus>(json) is { } status)
            {
                list.Add((name, status));
            }
        }

        return list;
    }

    /// <summary>Asks the named workers to drain; returns the names of those that are live. Once it returns, none of them admits a new task.</summary>
    public static IReadOnlyList<string> RequestDrain(JobStorage storage, Func<string, bool> which)
    {
        var names = Read(storage).Select(w => w.Worker).Where(which).ToList();
        using var connection = storage.GetConnection();
        foreach (var name in names)
        {
            connection.SetRangeInHash(Key(name), [new("drain", "1")]);
        }

        return names;
    }

    /// <summary>Whether a drain was asked for <paramref name="worker"/> (one read of the storage).</summary>
    public static bool DrainAsked(JobStorage storage, string worker)
    {
        using var connection = storage.GetConnection();
        return Asked(connection, worker);
    }

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
        using var connection = storage.GetConnection();
        if (!harvester.Draining && Asked(connection, workerName))
        {
            harvester.Drain();
        }

        using var tx = connection.CreateWriteTransaction();
        tx.AddToSet(Workers, workerName);
        tx.SetRangeInHash(Key(workerName), [new("status", JsonSerializer.Serialize(harvester.Status()))]);
        if (tx is JobStorageTransaction expiring)
        {
            expiring.ExpireHash(Key(workerName), Expiry);
        }

        tx.Commit();

        // Names of workers whose figures expired leave the set, so it does not grow with dead workers.
        foreach (var name in connection.GetAllItemsFromSet(Workers).Where(n => n != workerName))
        {
            if (connection.GetAllEntriesFromHash(Key(name)) is not { Count: > 0 } entries || !entries.ContainsKey("status"))
            {
                using var remove = connection.CreateWriteTransaction();
                remove.RemoveFromSet(Workers, name);
                remove.Commit();
            }
        }
    }

    private static string Key(string worker) => "pipelines:harvest:" + worker;

    private static bool Asked(IStorageConnection connection, string worker) =>
        connection.GetAllEntriesFromHash(Key(worker)) is { } entries && entries.TryGetValue("drain", out var drain) && drain.Length > 0;

    [LoggerMessage(Level = LogLevel.Warning, Message = "harvesting: could not publish this worker's figures: {Error}")]
    private static partial void LogPublishFailed(ILogger logger, string error);
}
