using Hangfire.Common;
using Hangfire.States;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Pipelines.Queue;

/// <summary>
/// The end of last resort, decided here once for every job: when Hangfire gives up on a job (its
/// retries for an outage have run out, or it threw something no retry helps), the job's work
/// ends with the job's exception as the reason, <c>gave up after N deliveries: ...</c>: a task
/// ends failed, a gather ends its run failed, an async function invocation ends failed (each
/// job, an <see cref="IEndsWhenGivenUp"/>, says what ending means). Without this a job left
/// failed on the dashboard would leave its work without an end. Runs after AutomaticRetry
/// (order 20), so it sees only the failures that retries will not try again.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
internal sealed partial class EndWhenJobFails : JobFilterAttribute, IElectStateFilter
{
    private readonly IServiceProvider services;

    // The jobs are looked up when one fails, not when Hangfire is configured: the task shell's
    // queue needs Hangfire's client, which needs this configuration.
    public EndWhenJobFails(IServiceProvider services)
    {
        this.services = services;

        // After AutomaticRetry's 20: only what retries will not try again reaches here.
        Order = 30;
    }

    public void OnStateElection(ElectStateContext context)
    {
        if (context.CandidateState is not FailedState failed || context.BackgroundJob?.Job is not { } job
            || services.GetService(job.Type) is not IEndsWhenGivenUp ending)
        {
            return;
        }

        var reason = $"gave up after {context.GetJobParameter<int>("RetryCount") + 1} deliveries: {PipelinesException.Describe(failed.Exception)}";
        try
        {
            ending.GiveUpAsync(job.Args.ToList(), reason, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The store is out of reach too: the job stays failed on the dashboard, where a retry
            // by hand (or the next delivery) ends it.
            LogCouldNotEnd(services.GetRequiredService<ILogger<EndWhenJobFails>>(), context.BackgroundJob.Id, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "job {JobId} failed for good and its work could not be ended: {Error}")]
    private static partial void LogCouldNotEnd(ILogger logger, string jobId, string error);
}
