using Pipelines.Triggers;

namespace Pipelines.Tests.Triggers;

[Unit]
public sealed class ListingRuleTests
{
    private static readonly DateTimeOffset Then = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_large_prefix_is_listed_after_its_checkpoint()
    {
        var (full, after) = ListingRule.Choose(new TriggerPollState("in/2026/11/26/x.fastq", Then, 1_000_000), reconcile: false, fullListingLimit: 10_000);
        Assert.False(full);
        Assert.Equal("in/2026/11/26/x.fastq", after);
    }

    [Fact]
    public void A_small_prefix_is_listed_in_full_every_time()
    {
        var (full, after) = ListingRule.Choose(new TriggerPollState("in/x.fastq", Then, 500), reconcile: false, fullListingLimit: 10_000);
        Assert.True(full);
        Assert.Null(after);
    }

    [Fact]
    public void Reconciliation_and_a_missing_checkpoint_list_in_full()
    {
        Assert.True(ListingRule.Choose(new TriggerPollState("in/x", Then, 1_000_000), reconcile: true, 10_000).Full);
        Assert.True(ListingRule.Choose(new TriggerPollState(null, Then, 1_000_000), reconcile: false, 10_000).Full);
        Assert.True(ListingRule.Choose(new TriggerPollState("in/x", null, null), reconcile: false, 10_000).Full);
    }
}
