namespace Pipelines.Queue;

/// <summary>
/// What a <see cref="ScheduledJob"/> delivers one recurrence to: the part that owns the work
/// (Triggers/TriggerJob). Owned here, below it, as <see cref="ITaskHandler"/> is.
/// </summary>
internal interface IRecurringHandler
{
    /// <summary>The kind of work this handler does, as its jobs carry it (and the dashboard names them: "trigger NAME: reconcile").</summary>
    string Kind { get; }

    /// <summary>One recurrence for <paramref name="key"/>; what it throws fails this recurrence only, the next one is its retry.</summary>
    Task RunAsync(string key, CancellationToken cancellationToken);
}
