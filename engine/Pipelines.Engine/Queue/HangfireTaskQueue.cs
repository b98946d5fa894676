using System.Reflection;
using Hangfire;
using Hangfire.Common;
using Hangfire.States;

namespace Pipelines.Queue;

/// <summary>Enqueues task and gather jobs through Hangfire's client.</summary>
internal sealed class HangfireTaskQueue(IBackgroundJobClient client, JobStorage storage) : ITaskQueue
{
    // The jobs are made from their methods, not from a lambda: Hangfire takes a lambda's
    // expression tree apart and evaluates each argument through it at every enqueue, about 2% of
    // the engine's CPU at 2,000 one-file tasks (docs/benchmarks.md, "The managed CPU of a one-file
    // task"). The job stored is the same: type, method and arguments.
    private static readonly MethodInfo RunOne = typeof(TaskJob).GetMethod(nameof(TaskJob.RunAsync))!;
    private static readonly MethodInfo RunSeveral = typeof(TaskJob).GetMethod(nameof(TaskJob.RunTasksAsync))!;

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
            Enqueue(RunOne, runId, i);
            return ValueTask.CompletedTask;
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// The dispatcher's release: one job per group of task indexes of the run (a group of one
    /// is the job of one task, as <see cref="EnqueueTasksAsync"/> makes).
    /// </summary>
    public async Task EnqueueJobsAsync(string runId, IReadOnlyList<int[]> jobs, CancellationToken cancellationToken)
    {
        if (jobs is [var only])
        {
            // The usual release while tasks end one after another: one job, made on this thread.
            // Through Parallel.ForEachAsync it was a work item of the thread pool, a second
            // thread woken for it, and the dispatcher's continuation a third.
            cancellationToken.ThrowIfCancellationRequested();
            EnqueueJob(runId, only);
            return;
        }

        await Parallel.ForEachAsync(jobs, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken }, (job, _) =>
        {
            EnqueueJob(runId, job);
            return ValueTask.CompletedTask;
        }).ConfigureAwait(false);
    }

    /// <summary>The job of one task, or of several.</summary>
    private void EnqueueJob(string runId, int[] job)
    {
        if (job is [var one])
        {
            Enqueue(RunOne, runId, one);
        }
        else
        {
            Enqueue(RunSeveral, runId, job);
        }
    }

    /// <summary>What <c>client.Enqueue&lt;TaskJob&gt;(j => j.METHOD(runId, tasks, CancellationToken.None))</c> makes.</summary>
    private void Enqueue(MethodInfo method, string runId, object tasks) =>
        client.Create(new Job(typeof(TaskJob), method, runId, tasks, CancellationToken.None), new EnqueuedState());

    public Task EnqueueGatherAsync(string runId, CancellationToken cancellationToken)
    {
        client.Enqueue<GatherJob>(j => j.RunAsync(runId, null, CancellationToken.None));
        return Task.CompletedTask;
    }
}
