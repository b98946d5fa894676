using Pipelines.Queue;
using Pipelines.RunStore;

namespace Pipelines.Tests.Queue;

/// <summary>
/// How many slots the live workers offer (Queue/WorkerSlots, the dispatcher's capacity): a
/// worker's harvester's fresh offer where it posted one, its configured slots otherwise.
/// </summary>
[Unit]
public sealed class WorkerSlotsTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_worker_offers_what_its_harvester_posted_and_one_without_an_offer_its_configured_slots()
    {
        // Hangfire's ids: the server name in lower case, the process id, a guid.
        (string, int)[] servers = [("host-a:4242:4242:6f1c0a3e-1b7e-4c55-9d0e-3f1b2a9c8d71", 4), ("host-b:77:77:0b8e5d2f-7c41-4a3b-8e9f-1d2c3b4a5e6f", 2)];
        var offers = new Dictionary<string, WorkerOffer>
        {
            ["Host-A:4242"] = new(0, HoldReasons.OwnerLoad, "the owner's load (85%) is above Harvest:StartBelow (50%)", Now.AddSeconds(-3)),
        };

        var capacity = WorkerSlots.Of(servers, offers, Now);

        Assert.Equal((2, 6), (capacity.Offered, capacity.Configured));
        var (worker, offer) = Assert.Single(capacity.Holding);
        Assert.Equal(("Host-A:4242", HoldReasons.OwnerLoad), (worker, offer.Hold));
    }

    [Fact]
    public void An_offer_older_than_a_minute_counts_as_none_and_no_offer_counts_above_the_configured_slots()
    {
        (string, int)[] servers = [("a:1:1:6f1c0a3e-1b7e-4c55-9d0e-3f1b2a9c8d71", 4), ("b:2:2:0b8e5d2f-7c41-4a3b-8e9f-1d2c3b4a5e6f", 2)];
        var offers = new Dictionary<string, WorkerOffer>
        {
            ["a:1"] = new(0, HoldReasons.Policy, "Harvest:Policy is never", Now - WorkerSlots.Fresh - TimeSpan.FromSeconds(1)),
            ["b:2"] = new(8, null, null, Now),
        };

        var capacity = WorkerSlots.Of(servers, offers, Now);

        Assert.Equal((6, 6), (capacity.Offered, capacity.Configured));
        Assert.Empty(capacity.Holding);
    }

    [Fact]
    public void A_server_id_names_its_worker_without_the_process_id_and_guid_hangfire_adds()
    {
        Assert.Equal("host:4242", WorkerSlots.NameOf("Host:4242:4242:6f1c0a3e-1b7e-4c55-9d0e-3f1b2a9c8d71"));
        Assert.Equal("bench", WorkerSlots.NameOf("bench:99:0b8e5d2f-7c41-4a3b-8e9f-1d2c3b4a5e6f"));
        Assert.Equal("6f1c0a3e-1b7e-4c55-9d0e-3f1b2a9c8d71", WorkerSlots.NameOf("6f1c0a3e-1b7e-4c55-9d0e-3f1b2a9c8d71"));
    }
}
