using Hangfire;

namespace Pipelines.Queue;

/// <summary>
/// How many task slots the live workers offer now: the one home of that rule (docs/tenants.md,
/// "Fair share"), read by the dispatcher for its capacity. A live worker is a Hangfire server on
/// the <c>default</c> queue with a heartbeat in the last minute. It offers what its harvester
/// last posted on the workers' board (<see cref="IWorkerBoard"/>: under when-idle the owner's
/// load decides it, never and a drain offer none) when that offer is fresh (posted within
/// <see cref="Fresh"/>), else its configured slots (Hangfire's workers): a worker without a
/// harvester, of a build before offers, or whose posts are late. Never more than its configured slots.
/// </summary>
/// <remarks>
/// Hangfire names a server "<c>server name in lower case</c>:<c>process id</c>:<c>guid</c>", and
/// the board names a worker by that server name (Worker:Name), so the two meet by the name in
/// lower case. The board is read at most every <see cref="OffersRead"/> (the offers change once
/// per harvest sample; the dispatcher may look many times a second), unless a live worker had no
/// offer in the last read (a worker just started must not be sent tasks its harvester refuses).
/// </remarks>
internal sealed class WorkerSlots(JobStorage storage, IWorkerBoard board, TimeProvider time)
{
    /// <summary>How old an offer may be and still count (a worker posts at every change and every 10 s).</summary>
    public static readonly TimeSpan Fresh = TimeSpan.FromMinutes(1);

    private static readonly TimeSpan OffersRead = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Heartbeat = TimeSpan.FromMinutes(1);

    private (DateTimeOffset At, IReadOnlyDictionary<string, WorkerOffer> Offers)? _offers;

    /// <summary>The live workers' slots now: offered, configured, and the workers that offer fewer than configured, with why.</summary>
    public WorkerCapacity Read()
    {
        var now = time.GetUtcNow();
        var servers = LiveServers(storage, now);
        if (servers.Count == 0)
        {
            return new WorkerCapacity(0, 0, []);
        }

        // Read again when a live worker has no offer in what was read: it may have just started.
        if (_offers is not { } cached || now - cached.At >= OffersRead || servers.Any(s => !cached.Offers.Keys.Any(w => string.Equals(w, NameOf(s.ServerId), StringComparison.OrdinalIgnoreCase))))
        {
            _offers = cached = (now, board.Offers());
        }

        return Of(servers, cached.Offers, now);
    }

    /// <summary>The Hangfire servers that take task jobs (the default queue) and sent a heartbeat in the last minute, with their workers.</summary>
    public static IReadOnlyList<(string ServerId, int Workers)> LiveServers(JobStorage storage, DateTimeOffset now)
    {
        var fresh = now.UtcDateTime - Heartbeat;
        return [.. storage.GetMonitoringApi().Servers()
            .Where(s => s.Queues.Contains("default") && (s.Heartbeat ?? s.StartedAt) >= fresh)
            .Select(s => (s.Name, s.WorkersCount))];
    }

    /// <summary>The rule itself, over the live servers and the board's offers (pure).</summary>
    public static WorkerCapacity Of(IEnumerable<(string ServerId, int Workers)> servers, IReadOnlyDictionary<string, WorkerOffer> offers, DateTimeOffset now)
    {
        var byName = new Dictionary<string, (string Worker, WorkerOffer Offer)>(StringComparer.Ordinal);
        foreach (var (worker, offer) in offers)
        {
            if (now - offer.At <= Fresh)
            {
                byName[worker.ToLowerInvariant()] = (worker, offer);
            }
        }

        int offered = 0, configured = 0;
        var holding = new List<(string, WorkerOffer)>();
        foreach (var (id, workers) in servers)
        {
            configured += workers;
            if (byName.TryGetValue(NameOf(id), out var posted))
            {
                var slots = Math.Clamp(posted.Offer.Slots, 0, workers);
                offered += slots;
                if (slots < workers && posted.Offer.Hold is not null)
                {
                    holding.Add(posted);
                }
            }
            else
            {
                offered += workers;
            }
        }

        return new WorkerCapacity(offered, configured, holding);
    }

    /// <summary>The server name in a Hangfire server id (its last two parts, process id and guid, taken off).</summary>
    internal static string NameOf(string serverId)
    {
        var last = serverId.LastIndexOf(':');
        var before = last > 0 ? serverId.LastIndexOf(':', last - 1) : -1;
        return (before > 0 ? serverId[..before] : serverId).ToLowerInvariant();
    }
}

/// <summary>
/// The live workers' task slots: <paramref name="Offered"/> now, of <paramref name="Configured"/>;
/// <paramref name="Holding"/> are the workers that offer fewer than configured, with their reason.
/// </summary>
internal sealed record WorkerCapacity(int Offered, int Configured, IReadOnlyList<(string Worker, WorkerOffer Offer)> Holding);
