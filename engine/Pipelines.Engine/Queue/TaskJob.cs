using Hangfire.Server;

namespace Pipelines.Queue;

/// <summary>
/// The Hangfire job of one task, or of several ready tasks of one run (<see cref="RunTasksAsync"/>:
/// docs/decisions.md, "Several tasks per Hangfire job"), released together by the dispatcher. It
/// carries ids only; everything else is in the run store. The dashboard names jobs through the
/// server's JobNames (a DisplayName attribute here would win over it).
/// </summary>
public sealed class TaskJob(ITaskHandler runner) : IEndsWhenGivenUp
{
    // Failures of the algorithm are recorded as task states, not thrown. What is thrown is an
    // outage (run store, store, engine): Hangfire retries it with the engine's retry policy
    // (EngineHost, Hangfire:Retries), and when retries run out EndWhenJobFails ends the task.
    public Task RunAsync(string runId, int taskIndex, CancellationToken cancellationToken) =>
        runner.RunAsync(runId, [taskIndex], cancellationToken);

    /// <summary>The job of several tasks: the same delivery, walked task by task (the task shell).</summary>
    public Task RunTasksAsync(string runId, int[] taskIndexes, CancellationToken cancellationToken) =>
        runner.RunAsync(runId, taskIndexes, cancellationToken);

    // The task shell ends each task still open, with the consequences of any failure (on_error:
    // fail stops the run; the last task to end starts the gather); one that ended is left as it is.
    async Task IEndsWhenGivenUp.GiveUpAsync(IReadOnlyList<object?> args, string reason, CancellationToken cancellationToken)
    {
        if (args is not [string runId, var tasks, ..])
        {
            return;
        }

        foreach (var index in tasks switch { int one => [one], int[] several => several, long one => [(int)one], _ => (int[])[] })
        {
            await runner.EndFailedAsync(runId, index, reason, cancellationToken).ConfigureAwait(false);
        }
    }
}

/// <summary>The Hangfire job that gathers a run after its last task.</summary>
public sealed class GatherJob(IGatherHandler runner) : IEndsWhenGivenUp
{
    public Task RunAsync(string runId, PerformContext? context, CancellationToken cancellationToken) =>
        runner.RunAsync(runId, context?.BackgroundJob.Id ?? "direct", cancellationToken);

    Task IEndsWhenGivenUp.GiveUpAsync(IReadOnlyList<object?> args, string reason, CancellationToken cancellationToken) =>
        args is [string runId, ..] ? runner.EndFailedAsync(runId, "the gather " + reason, cancellationToken) : Task.CompletedTask;
}
