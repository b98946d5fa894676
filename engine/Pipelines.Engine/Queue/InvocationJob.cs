using Hangfire.Server;
using Pipelines.Telemetry;

namespace Pipelines.Queue;

/// <summary>
/// The Hangfire job of one async invocation; it carries the invocation's id only (the caller's
/// trace rides as a job parameter). It runs on any worker process (the default queue). An outage
/// is thrown and retried with the engine's retry policy; when Hangfire gives up on it
/// (<see cref="EndWhenJobFails"/>, the one place that decides so for every job), the invocation
/// ends failed with the reason, so that none stays queued for ever.
/// </summary>
internal sealed class InvocationJob(IInvocationHandler functions) : IEndsWhenGivenUp
{
    public Task RunAsync(string invocationId, PerformContext? context, CancellationToken cancellationToken) =>
        functions.RunQueuedAsync(invocationId, context?.GetJobParameter<string>(EngineTracing.JobParameter), cancellationToken);

    Task IEndsWhenGivenUp.GiveUpAsync(IReadOnlyList<object?> args, string reason, CancellationToken cancellationToken) =>
        args is [string invocationId, ..] ? functions.GiveUpAsync(invocationId, reason, cancellationToken) : Task.CompletedTask;
}
