using System.Text.Json;
using Hangfire;
using Hangfire.Storage;

namespace Pipelines.Queue;

/// <summary>
/// The workers' board in Hangfire's storage: a set of names and a hash per worker that expires
/// (where the storage can expire a hash: Hangfire.PostgreSql and Hangfire.InMemory both can). The
/// keys are those the harvest board has always used, so that workers of the build before this
/// one and after it share one board.
/// </summary>
internal sealed class HangfireWorkerBoard(JobStorage storage) : IWorkerBoard
{
    private const string Workers = "pipelines:harvest-workers";

    public IReadOnlyList<(string Worker, string Figures)> Read()
    {
        using var connection = storage.GetConnection();
        var list = new List<(string, string)>();
        foreach (var name in connection.GetAllItemsFromSet(Workers).Order(StringComparer.Ordinal))
        {
            if (connection.GetAllEntriesFromHash(Key(name)) is { } entries && entries.TryGetValue("status", out var figures))
            {
                list.Add((name, figures));
            }
        }

        return list;
    }

    public void Post(string worker, string figures, WorkerOffer offer, TimeSpan expiry)
    {
        using var connection = storage.GetConnection();
        using (var tx = connection.CreateWriteTransaction())
        {
            tx.AddToSet(Workers, worker);
            tx.SetRangeInHash(Key(worker), [new("status", figures), new("offer", JsonSerializer.Serialize(offer, QueueJson.Default.WorkerOffer))]);
            if (tx is JobStorageTransaction expiring)
            {
                expiring.ExpireHash(Key(worker), expiry);
            }

            tx.Commit();
        }

        foreach (var name in connection.GetAllItemsFromSet(Workers).Where(n => n != worker))
        {
            if (connection.GetAllEntriesFromHash(Key(name)) is not { Count: > 0 } entries || !entries.ContainsKey("status"))
            {
                using var remove = connection.CreateWriteTransaction();
                remove.RemoveFromSet(Workers, name);
                remove.Commit();
            }
        }
    }

    public IReadOnlyDictionary<string, WorkerOffer> Offers()
    {
        using var connection = storage.GetConnection();
        var offers = new Dictionary<string, WorkerOffer>(StringComparer.Ordinal);
        foreach (var name in connection.GetAllItemsFromSet(Workers))
        {
            if (connection.GetAllEntriesFromHash(Key(name)) is { } entries && entries.TryGetValue("offer", out var json) && JsonSerializer.Deserialize(json, QueueJson.Default.WorkerOffer) is { } offer)
            {
                offers[name] = offer;
            }
        }

        return offers;
    }

    public void AskDrain(string worker)
    {
        using var connection = storage.GetConnection();
        connection.SetRangeInHash(Key(worker), [new("drain", "1")]);
    }

    public bool DrainAsked(string worker)
    {
        using var connection = storage.GetConnection();
        return connection.GetAllEntriesFromHash(Key(worker)) is { } entries && entries.TryGetValue("drain", out var drain) && drain.Length > 0;
    }

    public int LiveServers() => storage.GetMonitoringApi().Servers().Count;

    private static string Key(string worker) => "pipelines:harvest:" + worker;
}
