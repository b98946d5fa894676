using Hangfire;

namespace Pipelines.Queue;

/// <summary>Enqueues task and gather jobs through Hangfire's client.</summary>
public sealed class HangfireTaskQueue(IBackgroundJobClient client) : ITaskQueue
{
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

    public Task EnqueueGatherAsync(string runId, CancellationToken cancellationToken)
    {
        client.Enqueue<GatherJob>(j => j.RunAsync(runId, null, CancellationToken.None));
        return Task.CompletedTask;
    }
}
