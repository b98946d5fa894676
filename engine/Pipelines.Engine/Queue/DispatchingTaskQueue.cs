using Pipelines.RunStore;

namespace Pipelines.Queue;

/// <summary>
/// The task queue of the engine (docs/tenants.md, Fair share): a task given to it is marked
/// pending in the run store, and the <see cref="TaskDispatcher"/> releases it into Hangfire's
/// queue (<see cref="HangfireTaskQueue"/>) when a slot frees and its tenant's turn and quota
/// allow. Hangfire's queue then stays about a job per slot deep, so its FIFO order no longer
/// decides who runs. Gathers go straight through: a run's gather is never held.
/// </summary>
internal sealed class DispatchingTaskQueue(HangfireTaskQueue hangfire, IRunStore store, DispatchSignal signal) : ITaskQueue
{
    public async Task EnqueueTasksAsync(string runId, IReadOnlyList<int> taskIndexes, CancellationToken cancellationToken)
    {
        // A task that is not queued (a vacated attempt's, running with its lease released) is in
        // flight already: its next delivery goes straight to Hangfire, as before the dispatcher.
        var inFlight = await store.MarkPendingAsync(runId, taskIndexes, cancellationToken).ConfigureAwait(false);
        if (inFlight.Count > 0)
        {
            await hangfire.EnqueueTasksAsync(runId, inFlight, cancellationToken).ConfigureAwait(false);
        }

        await signal.PulseAsync(cancellationToken).ConfigureAwait(false);
    }

    public Task<int> WorkerSlotsAsync(CancellationToken cancellationToken) => hangfire.WorkerSlotsAsync(cancellationToken);

    public Task EnqueueGatherAsync(string runId, CancellationToken cancellationToken) => hangfire.EnqueueGatherAsync(runId, cancellationToken);

    public Task TaskEndedAsync(CancellationToken cancellationToken) => signal.PulseAsync(cancellationToken);
}
