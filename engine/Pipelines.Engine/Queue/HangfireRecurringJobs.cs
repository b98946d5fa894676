using Hangfire;

namespace Pipelines.Queue;

/// <summary>Recurring jobs kept in Hangfire's storage (its dashboard's Recurring Jobs page lists them by id).</summary>
internal sealed class HangfireRecurringJobs(IRecurringJobManager manager) : IRecurringJobs
{
    public void AddOrUpdate(string id, string queue, string kind, string key, string cron) =>
        manager.AddOrUpdate<ScheduledJob>(id, queue, j => j.RunAsync(kind, key, CancellationToken.None), cron);

    public void RemoveIfExists(string id) => manager.RemoveIfExists(id);
}
