using Pipelines.Containers;

namespace Pipelines.Tests.Containers;

/// <summary>When a running attempt's folders are looked at next: the interval, and sooner as a writer nears its quota.</summary>
[Unit]
public sealed class QuotaPaceTests
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);
    private const long Mi = 1 << 20;

    [Fact]
    public void A_folder_that_did_not_grow_is_looked_at_again_after_the_interval() =>
        Assert.Equal(Second, QuotaPace.Next(Second, 20 * Mi, 5 * Mi, 5 * Mi, Second));

    [Fact]
    public void A_slow_writer_far_from_its_quota_waits_the_interval() =>
        Assert.Equal(Second, QuotaPace.Next(Second, 1024 * Mi, 1 * Mi, 2 * Mi, Second));

    [Fact]
    public void A_writer_that_would_reach_its_quota_in_a_second_is_looked_at_in_half_a_second() =>
        Assert.Equal(TimeSpan.FromMilliseconds(500), QuotaPace.Next(Second, 20 * Mi, 0, 10 * Mi, Second));

    [Fact]
    public void A_writer_at_a_gigabyte_a_second_is_looked_at_no_sooner_than_the_shortest_wait() =>
        Assert.Equal(QuotaPace.Shortest, QuotaPace.Next(Second, 20 * Mi, 0, 1024 * Mi, Second));

    [Fact]
    public void The_shortest_wait_is_never_longer_than_the_interval() =>
        Assert.Equal(TimeSpan.FromMilliseconds(20), QuotaPace.Next(TimeSpan.FromMilliseconds(20), 20 * Mi, 0, 19 * Mi, Second));
}
