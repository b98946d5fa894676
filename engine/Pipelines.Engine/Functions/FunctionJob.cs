using Hangfire;
using Hangfire.Server;
using Microsoft.Extensions.Configuration;
using Pipelines.Hosting;

namespace Pipelines.Functions;

/// <summary>
/// The Hangfire job of one async invocation; it carries the invocation's id only. It runs on
/// any worker process (the default queue). An outage is thrown and retried with the engine's
/// retry policy; after the last retry the invocation is recorded failed instead, so that no
/// invocation stays queued for ever.
/// </summary>
public sealed class FunctionJob(FunctionService functions, IConfiguration config)
{
    public async Task RunAsync(string invocationId, PerformContext? context, CancellationToken cancellationToken)
    {
        try
        {
            await functions.RunQueuedAsync(invocationId, context?.GetJobParameter<string>(Telemetry.EngineTracing.JobParameter), cancellationToken).ConfigureAwait(false);
        }
        catch (PipelinesException e) when (e.RetryHelps && context is not null
            && context.GetJobParameter<int>("RetryCount") >= EngineHost.RetryPolicy(config).Attempts)
        {
            await functions.GiveUpAsync(invocationId, "gave up after the retries: " + e.Message, cancellationToken).ConfigureAwait(false);
        }
    }
}
