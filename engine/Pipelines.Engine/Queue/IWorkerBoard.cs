namespace Pipelines.Queue;

/// <summary>
/// The workers' board, kept in the queue's storage (PostgreSQL, or memory in the embedded mode)
/// so that every process sharing the queue sees every worker: each worker posts its figures
/// (text its owner writes and reads: Harvest/HarvestBoard, JSON) under its name, where they
/// expire unless posted again, and looks whether a drain was asked for it. The parts above name
/// this, never Hangfire (docs/architecture.md, "Layering"); <see cref="HangfireWorkerBoard"/> keeps it in Hangfire's storage.
/// </summary>
public interface IWorkerBoard
{
    /// <summary>Every live worker's latest figures, by name in ordinal order.</summary>
    IReadOnlyList<(string Worker, string Figures)> Read();

    /// <summary>
    /// Posts <paramref name="worker"/>'s figures and what it offers the queue now, gone after
    /// <paramref name="expiry"/> unless posted again; workers whose figures expired leave the
    /// board, so that it does not grow with dead workers.
    /// </summary>
    void Post(string worker, string figures, WorkerOffer offer, TimeSpan expiry);

    /// <summary>Every worker's latest offer, by name (a worker of a build before offers posts none).</summary>
    IReadOnlyDictionary<string, WorkerOffer> Offers();

    /// <summary>Asks <paramref name="worker"/> to drain; it sees the request at its next look.</summary>
    void AskDrain(string worker);

    /// <summary>Whether a drain was asked for <paramref name="worker"/> (one read of the storage).</summary>
    bool DrainAsked(string worker);

    /// <summary>The processes that take work from the queue now (every queue's), whether or not they post figures.</summary>
    int LiveServers();
}
