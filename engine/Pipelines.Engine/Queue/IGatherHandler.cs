namespace Pipelines.Queue;

/// <summary>
/// What a <see cref="GatherJob"/> delivers a run's gather to: Gather/GatherRunner. Owned here, below
/// the gather, so that the queue names no part above it (docs/architecture.md, "Layering").
/// </summary>
public interface IGatherHandler
{
    /// <summary>Gathers the run; <paramref name="gatherJobId"/> is the job's id (or "direct").</summary>
    Task RunAsync(string runId, string gatherJobId, CancellationToken cancellationToken);

    /// <summary>Ends the run failed with <paramref name="reason"/>: the queue gave up on its gather.</summary>
    Task EndFailedAsync(string runId, string reason, CancellationToken cancellationToken);
}
