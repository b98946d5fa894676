using System.ComponentModel;
using Hangfire;

namespace Pipelines.Triggers;

/// <summary>
/// The recurring Hangfire job of one trigger (id trigger:&lt;name&gt;): a full listing of the
/// watched prefix, which finds what the fast incremental polls cannot (keys that sort before the
/// checkpoint, overwritten objects), then the usual settle and cut. It runs on the "triggers"
/// queue, which only processes with the triggers role take.
/// </summary>
public sealed class TriggerJob(ITriggerStore ledger, TriggerCycle cycle, IRecurringJobManager recurring)
{
    public const string Queue = "triggers";

    // No automatic retry: the next recurrence is the retry, and the fast loop keeps polling.
    [DisplayName("trigger {0}: reconcile")]
    [AutomaticRetry(Attempts = 0)]
    public async Task ReconcileAsync(string workflow, CancellationToken cancellationToken)
    {
        var trigger = await ledger.GetAsync(workflow, cancellationToken).ConfigureAwait(false);
        if (trigger is null)
        {
            recurring.RemoveIfExists(RegisteredTrigger.RecurringJobIdOf(workflow));
            return;
        }

        var result = await cycle.RunWaitingAsync(trigger, reconcile: true, TimeSpan.FromMinutes(2), cancellationToken).ConfigureAwait(false);
        if (!result.Ran)
        {
            throw new PipelinesException($"trigger {workflow}: another process held its lock for 2 minutes; the next recurrence tries again", retryHelps: true);
        }
    }
}
