using Hangfire;

namespace Pipelines.Queue;

/// <summary>Enqueues task and gather jobs through Hangfire's client.</summary>
internal sealed class HangfireTaskQueue(IBackgroundJobClient client, JobStorage storage) : ITaskQueue
{
    /// <summary>
    /// The configured slots of the live workers (<see cref="WorkerSlots.LiveServers"/>), whatever
    /// their harvesters offer now (for input.batch: auto, sized for the run's whole life); 0 when
    /// none is live (a submit-only host with no worker yet).
    /// </summary>
    public Task<int> WorkerSlotsAsync(CancellationToken cancellationToken) =>
        Task.FromResult(WorkerSlots.LiveServers(storage, DateTimeOffset.UtcNow).Sum(s => s.Workers));

    public async Task EnqueueTasksAsync(string runId, IReadOnlyList<int> taskIndexes, CancellationToken cancellationToken)
    {
        // Hangfire's client is synchronous; a few parallel enqueuers keep a large run's
        // submission short against a remote PostgreSQL.
        await Parallel.ForEachAsync(taskIndexes, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken }, (i, _) =>
        {
            client.Enqueue<TaskJob>(j => j.RunAsync(runId, i, CancellationToken.None));
            return ValueTask.CompletedTask;
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// The dispatcher's release: one job per group of task indexes of the run (a group of one
    /// is the job of one task, as <see cref="EnqueueTasksAsync"/> makes).
    /// </summary>
    public async Task EnqueueJobsAsync(string runId, IReadOnlyList<int[]> jobs, CancellationToken cancellationToken)
    {
        await Parallel.ForEachAsync(jobs, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken }, (job, _) =>
        {
            if (job is [var one])
            {
                client.Enqueue<TaskJob>(j => j.RunAsync(runId, one, CancellationToken.None));
            }
            else
            {
                client.Enqueue<TaskJob>(j => j.RunTasksAsync(runId, job, CancellationToken.None));
            }

            return ValueTask.CompletedTask;
        }).ConfigureAwait(false);
    }

    public Task EnqueueGatherAsync(string runId, CancellationToken cancellationToken)
    {
        client.Enqueue<GatherJob>(j => j.RunAsync(runId, null, CancellationToken.None));
        return Task.CompletedTask;
    }
}
