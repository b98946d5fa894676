namespace Pipelines.Triggers;

/// <summary>
/// When the waiting objects become a run: once none has arrived for the trigger's settle time,
/// or at once when there are enough for a full run (a steady flood never settles; it becomes
/// one full run after another, and the rest waits for settle).
/// </summary>
internal static class SettleRule
{
    /// <summary>Whether to cut a run now, and, when not, how long until the newest object has settled.</summary>
    public static (bool Cut, TimeSpan Wait) Decide(PendingObjects pending, DateTimeOffset now, TimeSpan settle, int maxObjectsPerRun)
    {
        if (pending.Count == 0 || pending.NewestSeenAt is not { } newest)
        {
            return (false, settle);
        }

        if (pending.Count >= maxObjectsPerRun)
        {
            return (true, TimeSpan.Zero);
        }

        var quiet = now - newest;
        return quiet >= settle ? (true, TimeSpan.Zero) : (false, settle - quiet);
    }
}
