using Hangfire;
using Hangfire.Common;
using Hangfire.States;
using Pipelines.Telemetry;

namespace Pipelines.Queue;

/// <summary>Queues async invocations through Hangfire's client, the caller's trace as a job parameter.</summary>
internal sealed class HangfireInvocationQueue(IBackgroundJobClient client, DispatchSignal signal) : IInvocationQueue
{
    public Task ChangedAsync(CancellationToken cancellationToken) => signal.PulseAsync(cancellationToken);

    public void Enqueue(string id, string? traceParent) => Create(id, traceParent, new EnqueuedState());

    public void Schedule(string id, string? traceParent, TimeSpan delay) => Create(id, traceParent, new ScheduledState(delay));

    private void Create(string id, string? traceParent, IState state)
    {
        var job = Job.FromExpression<InvocationJob>(j => j.RunAsync(id, null, CancellationToken.None));
        var parameters = new Dictionary<string, object>();
        if (traceParent is not null)
        {
            parameters[EngineTracing.JobParameter] = traceParent;
        }

        ((IBackgroundJobClientV2)client).Create(job, state, parameters);
    }
}
