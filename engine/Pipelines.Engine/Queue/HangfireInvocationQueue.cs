using Hangfire;
using Hangfire.Common;
using Hangfire.States;
using Pipelines.Telemetry;

namespace Pipelines.Queue;

/// <summary>Queues async invocations through Hangfire's client, the caller's trace as a job parameter.</summary>
internal sealed class HangfireInvocationQueue(IBackgroundJobClient client) : IInvocationQueue
{
    public void Enqueue(string id, string? traceParent)
    {
        var job = Job.FromExpression<InvocationJob>(j => j.RunAsync(id, null, CancellationToken.None));
        var parameters = new Dictionary<string, object>();
        if (traceParent is not null)
        {
            parameters[EngineTracing.JobParameter] = traceParent;
        }

        ((IBackgroundJobClientV2)client).Create(job, new EnqueuedState(), parameters);
    }
}
