using Pipelines.Queue;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Queue;

/// <summary>How many tasks a job carries (Queue/JobSizes), the dispatcher's one rule for it.</summary>
[Unit]
public sealed class JobSizesTests
{
    [Theory]
    [InlineData(400, 4, 8, false, 8)] // a big run: as many as Tenancy:TasksPerJob allows
    [InlineData(40, 4, 8, false, 5)] // 40 over 4 slots x 2: jobs of 5, so 8 jobs and no slot without one queued
    [InlineData(10, 4, 8, false, 1)] // fewer than 2 per slot x 2: one each
    [InlineData(0, 4, 8, false, 1)]
    [InlineData(400, 0, 8, false, 1)] // no live slot
    [InlineData(400, 4, 1, false, 1)] // Tenancy:TasksPerJob 1: one job per task, as before
    [InlineData(400, 4, 8, true, 1)] // contended (invocations waiting or running, or two tenants' tasks waiting): one per job
    public void A_job_carries_the_waiting_tasks_spread_over_twice_the_slots_within_the_bound(int pending, int offered, int max, bool contended, int expected) =>
        Assert.Equal(expected, JobSizes.Of(pending, offered, max, contended));

    [Fact]
    public void Released_tasks_become_as_few_jobs_as_the_size_allows_as_even_as_they_can_be_in_task_order()
    {
        Assert.Equal([[0, 1, 2], [3, 4, 5], [6, 7, 8]], JobSizes.Split([0, 1, 2, 3, 4, 5, 6, 7, 8], 4));
        Assert.Equal([[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]], JobSizes.Split([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 4));
        Assert.Equal([[7], [9]], JobSizes.Split([7, 9], 1));
        Assert.Equal([[7, 9]], JobSizes.Split([7, 9], 8));
        Assert.Empty(JobSizes.Split([], 8));
    }
}
