using Hangfire;

namespace Pipelines.Queue;

/// <summary>Enqueues task and gather jobs through Hangfire's client.</summary>
internal sealed class HangfireTaskQueue(IBackgroundJobClient client, JobStorage storage) : ITaskQueue
{
    /// <summary>
    /// The workers of the Hangfire servers that take task jobs (the default queue) and have
    /// sent a heartbeat in the last minute; 0 when none does (a submit-only host with no worker yet).
    /// </summary>
    public Task<int> WorkerSlotsAsync(CancellationToken cancellationToken)
    {
        var fresh = DateTime.UtcNow - TimeSpan.FromMinutes(1);
        var slots = storage.GetMonitoringApi().Servers()
            .Where(s => s.Queues.Contains("default") && (s.Heartbeat ?? s.StartedAt) >= fresh)
            .Sum(s => s.WorkersCount);
        return Task.FromResult(slots);
    }

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
