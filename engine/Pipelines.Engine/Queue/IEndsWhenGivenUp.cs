namespace Pipelines.Queue;

/// <summary>
/// A job whose work ends, with a reason, when Hangfire gives up on it (its retries for an outage
/// have run out, or it threw something no retry helps): a task ends failed, a run's gather ends
/// the run failed, an async invocation ends failed. <see cref="EndWhenJobFails"/> decides when and
/// writes the reason, once for every job; each job says only what ending means for its work.
/// </summary>
internal interface IEndsWhenGivenUp
{
    /// <summary>Ends the work of the job called with <paramref name="args"/> (as Hangfire stored them) with <paramref name="reason"/>.</summary>
    Task GiveUpAsync(IReadOnlyList<object?> args, string reason, CancellationToken cancellationToken);
}
