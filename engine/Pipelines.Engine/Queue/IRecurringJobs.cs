namespace Pipelines.Queue;

/// <summary>
/// Recurring work the queue keeps on a schedule (a trigger's full reconciliation): one job per
/// id, run on a queue of its own by the processes that take that queue, each recurrence handed
/// to the <see cref="IRecurringHandler"/> of its kind. The parts above name this, never Hangfire
/// (docs/architecture.md, "Layering"); <see cref="HangfireRecurringJobs"/> keeps it in Hangfire's storage.
/// </summary>
internal interface IRecurringJobs
{
    /// <summary>
    /// Adds the recurring job <paramref name="id"/>, or updates it: on <paramref name="cron"/>, on
    /// <paramref name="queue"/>, <paramref name="key"/> is handed to the handler of <paramref name="kind"/>.
    /// </summary>
    void AddOrUpdate(string id, string queue, string kind, string key, string cron);

    /// <summary>Removes the recurring job <paramref name="id"/>; one that is not there is no fault.</summary>
    void RemoveIfExists(string id);
}
