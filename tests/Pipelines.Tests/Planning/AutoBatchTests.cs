using Pipelines.Planning;

namespace Pipelines.Tests.Planning;

/// <summary>input.batch: auto sizes tasks from the slots, the files and recorded times.</summary>
[Unit]
public sealed class AutoBatchTests
{
    [Theory]
    [InlineData(2000, 4, 125)] // 16 tasks: 4 per slot
    [InlineData(200, 4, 13)]
    [InlineData(10, 4, 1)]
    [InlineData(1, 4, 1)]
    [InlineData(2000, 0, 500)] // no live worker yet: planned as if there were one slot
    [InlineData(1_000_000, 8, 1000)] // capped
    public void Without_recorded_times_each_slot_gets_four_tasks(long units, int slots, int expected)
    {
        var (batch, why) = AutoBatch.Size(units, units * 1000, slots, perUnit: null);

        Assert.Equal(expected, batch);
        Assert.NotEmpty(why);
    }

    [Fact]
    public void Quick_units_are_batched_so_that_a_task_runs_at_least_two_seconds()
    {
        var (batch, why) = AutoBatch.Size(2000, 2_000_000, slots: 4, perUnit: TimeSpan.FromMilliseconds(5));

        Assert.Equal(400, batch);
        Assert.Contains("at least 2 s", why, StringComparison.Ordinal);
    }

    [Fact]
    public void Slow_units_are_batched_so_that_a_task_runs_at_most_ten_minutes()
    {
        var (batch, _) = AutoBatch.Size(2000, 2_000_000, slots: 1, perUnit: TimeSpan.FromSeconds(60));

        Assert.Equal(10, batch);
    }

    [Fact]
    public void Big_units_are_batched_so_that_a_task_holds_at_most_two_gib_of_input()
    {
        var (batch, why) = AutoBatch.Size(100, 100L * 512 * 1024 * 1024, slots: 1, perUnit: null);

        Assert.Equal(4, batch);
        Assert.Contains("2 GiB", why, StringComparison.Ordinal);
    }
}
