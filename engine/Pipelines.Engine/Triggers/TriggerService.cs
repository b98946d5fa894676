using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Queue;
using Pipelines.Tenancy;

namespace Pipelines.Triggers;

/// <summary>
/// The trigger role's loop: every PollInterval, one cycle per registered trigger (each under its
/// advisory lock, so two trigger processes share the work without doing it twice). Hangfire's
/// recurring jobs have a one-minute floor, too slow for a settle of seconds; this loop is the
/// fast path and the recurring job the slow full reconciliation. One trigger's failure is
/// recorded on it and never stops the loop or the other triggers.
/// </summary>
internal sealed partial class TriggerService(
    ITriggerStore ledger,
    TriggerCycle cycle,
    IRecurringJobs recurring,
    TriggerOptions options,
    TimeProvider time,
    ILogger<TriggerService> log) : BackgroundService
{
    private readonly HashSet<string> _jobs = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.PollInterval, time);
        do
        {
            await TickAsync(stoppingToken).ConfigureAwait(false);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>One pass over every registered trigger.</summary>
    internal async Task TickAsync(CancellationToken ct)
    {
        IReadOnlyList<RegisteredTrigger> triggers;
        try
        {
            triggers = await ledger.ListAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            LogOutage(log, e.Message);
            return;
        }

        foreach (var trigger in triggers)
        {
            try
            {
                if (_jobs.Add(trigger.JobKey))
                {
                    // Registered by `pipelines register` too; again here so that a changed
                    // ReconcileInterval or a job deleted on the dashboard comes back.
                    TriggerRegistrar.AddRecurringJob(recurring, trigger.JobKey, options);
                }

                await cycle.RunAsync(trigger, reconcile: false, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                _jobs.Remove(trigger.JobKey);
                LogCycleFailed(log, trigger.Name, e.Message);
                await RecordErrorAsync(trigger, e.Message, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task RecordErrorAsync(RegisteredTrigger trigger, string error, CancellationToken ct)
    {
        try
        {
            await ledger.For(TenantScope.Of(trigger.Tenant)).SaveErrorAsync(trigger.Name, error, time.GetUtcNow(), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            // PostgreSQL itself is away: the log line above is all there is until it is back.
            LogOutage(log, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "trigger {Workflow}: cycle failed, retried in the next poll: {Error}")]
    private static partial void LogCycleFailed(ILogger logger, string workflow, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "triggers: cannot read the registered triggers: {Error}")]
    private static partial void LogOutage(ILogger logger, string error);
}
