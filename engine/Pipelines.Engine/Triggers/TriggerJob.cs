using Pipelines.Queue;
using Pipelines.Tenancy;

namespace Pipelines.Triggers;

/// <summary>
/// The recurring job of one trigger (id trigger:&lt;name&gt;, kept by the queue's
/// <see cref="IRecurringJobs"/>): a full listing of the watched prefix, which finds what the fast
/// incremental polls cannot (keys that sort before the checkpoint, overwritten objects), then the
/// usual settle and cut. It runs on the "triggers" queue, which only processes with the triggers role take.
/// </summary>
internal sealed class TriggerJob(ITriggerStore ledger, TriggerCycle cycle, IRecurringJobs recurring) : IRecurringHandler
{
    public const string Queue = "triggers";

    /// <summary>The kind its recurring jobs carry: on the dashboard, "trigger NAME: reconcile".</summary>
    public const string JobKind = "trigger";

    public string Kind => JobKind;

    public async Task RunAsync(string key, CancellationToken cancellationToken)
    {
        // The key names the trigger in its tenant (RegisteredTrigger.JobKeyOf): a name alone is the default tenant's.
        var trigger = RegisteredTrigger.ParseJobKey(key) is var (tenant, name)
            ? await ledger.For(TenantScope.Of(tenant)).GetAsync(name, cancellationToken).ConfigureAwait(false)
            : null;
        if (trigger is null)
        {
            recurring.RemoveIfExists(RegisteredTrigger.RecurringJobIdOf(key));
            return;
        }

        var result = await cycle.RunWaitingAsync(trigger, reconcile: true, TimeSpan.FromMinutes(2), cancellationToken).ConfigureAwait(false);
        if (!result.Ran)
        {
            throw new PipelinesException($"trigger {key}: another process held its lock for 2 minutes; the next recurrence tries again", retryHelps: true);
        }
    }
}
