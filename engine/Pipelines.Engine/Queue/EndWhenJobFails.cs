using Hangfire.Common;
using Hangfire.States;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pipelines.RunStore;
using Pipelines.Worker;

namespace Pipelines.Queue;

/// <summary>
/// The end of last resort: when Hangfire gives up on a task or gather job (its retries for an
/// outage have run out, or it threw something no retry helps), the task ends failed, or the
/// run ends failed, with the job's exception as the reason. Without this a job left failed on
/// the dashboard would leave its task and its run without an end. Runs after AutomaticRetry
/// (order 20), so it sees only the failures that retries will not try again.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
internal sealed partial class EndWhenJobFails : JobFilterAttribute, IElectStateFilter
{
    private readonly IServiceProvider services;

    // The run store and the task shell are looked up when a job fails, not when Hangfire is
    // configured: the shell's queue needs Hangfire's client, which needs this configuration.
    public EndWhenJobFails(IServiceProvider services)
    {
        this.services = services;

        // After AutomaticRetry's 20: only what retries will not try again reaches here.
        Order = 30;
    }

    public void OnStateElection(ElectStateContext context)
    {
        if (context.CandidateState is not FailedState failed || context.BackgroundJob?.Job is not { } job)
        {
            return;
        }

        var store = services.GetRequiredService<IRunStore>();
        var time = services.GetRequiredService<TimeProvider>();
        var log = services.GetRequiredService<ILogger<EndWhenJobFails>>();
        var reason = $"gave up after {context.GetJobParameter<int>("RetryCount") + 1} deliveries: {PipelinesException.Describe(failed.Exception)}";
        try
        {
            if (job.Type == typeof(TaskJob) && job.Args is [string runId, int index, ..])
            {
                // The task shell ends it, with the consequences of any failure (on_error: fail
                // stops the run; the last task to end starts the gather).
                services.GetRequiredService<TaskRunner>().EndFailedAsync(runId, index, reason, CancellationToken.None).GetAwaiter().GetResult();
            }
            else if (job.Type == typeof(GatherJob) && job.Args is [string gatherRun, ..])
            {
                var run = store.GetRunAsync(gatherRun, CancellationToken.None).GetAwaiter().GetResult();
                if (run is not null && !run.State.IsTerminal())
                {
                    store.FinishRunAsync(gatherRun, RunState.Failed, "the gather " + reason, time.GetUtcNow(), CancellationToken.None).GetAwaiter().GetResult();
                    Telemetry.EngineMetrics.RunEnded(RunState.Failed.Name());
                    LogRunEnded(log, gatherRun, reason);
                }
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The run store is out of reach too: the job stays failed on the dashboard, where a
            // retry by hand (or the next delivery) ends it.
            LogCouldNotEnd(log, context.BackgroundJob.Id, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "run {RunId} ended failed: {Reason}")]
    private static partial void LogRunEnded(ILogger logger, string runId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "job {JobId} failed for good and its task or run could not be ended: {Error}")]
    private static partial void LogCouldNotEnd(ILogger logger, string jobId, string error);
}
