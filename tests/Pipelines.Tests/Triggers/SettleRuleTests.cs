using Microsoft.Extensions.Time.Testing;
using Pipelines.Triggers;

namespace Pipelines.Tests.Triggers;

[Unit]
public sealed class SettleRuleTests
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(30);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public void Nothing_pending_never_cuts()
    {
        var (cut, _) = SettleRule.Decide(new PendingObjects(0, null), _time.GetUtcNow(), Settle, 100);
        Assert.False(cut);
    }

    [Fact]
    public void Objects_wait_until_none_has_arrived_for_the_settle_time()
    {
        var pending = new PendingObjects(3, _time.GetUtcNow());

        _time.Advance(TimeSpan.FromSeconds(29));
        var early = SettleRule.Decide(pending, _time.GetUtcNow(), Settle, 100);
        _time.Advance(TimeSpan.FromSeconds(1));
        var settled = SettleRule.Decide(pending, _time.GetUtcNow(), Settle, 100);

        Assert.False(early.Cut);
        Assert.Equal(TimeSpan.FromSeconds(1), early.Wait);
        Assert.True(settled.Cut);
    }

    [Fact]
    public void A_new_arrival_restarts_the_settle_time()
    {
        _time.Advance(TimeSpan.FromSeconds(25));
        var newest = _time.GetUtcNow();
        _time.Advance(TimeSpan.FromSeconds(10));

        var (cut, wait) = SettleRule.Decide(new PendingObjects(4, newest), _time.GetUtcNow(), Settle, 100);

        Assert.False(cut);
        Assert.Equal(TimeSpan.FromSeconds(20), wait);
    }

    [Fact]
    public void A_full_batch_is_cut_at_once_even_while_objects_keep_arriving()
    {
        var (cut, _) = SettleRule.Decide(new PendingObjects(100, _time.GetUtcNow()), _time.GetUtcNow(), Settle, 100);
        Assert.True(cut);
    }
}
