using System.ComponentModel;
using Hangfire;

namespace Pipelines.Queue;

/// <summary>
/// The Hangfire job of one recurring piece of work (<see cref="IRecurringJobs"/>): it carries the
/// work's kind and key only, and hands the key to the <see cref="IRecurringHandler"/> of that kind.
/// </summary>
internal sealed class ScheduledJob(IEnumerable<IRecurringHandler> handlers)
{
    // No automatic retry: the next recurrence is the retry (a trigger's fast loop keeps polling meanwhile).
    [DisplayName("{0} {1}: reconcile")]
    [AutomaticRetry(Attempts = 0)]
    public Task RunAsync(string kind, string key, CancellationToken cancellationToken)
    {
        var handler = handlers.FirstOrDefault(h => h.Kind == kind)
            ?? throw new PipelinesException($"recurring job {kind} {key}: this process has no handler of {kind} jobs", retryHelps: false);
        return handler.RunAsync(key, cancellationToken);
    }
}
