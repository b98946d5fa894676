namespace Pipelines.RunStore;

/// <summary>A change was asked of a run (or a task of it) that the run store does not hold; nothing was written.</summary>
internal sealed class UnknownRunException(string runId, int? index = null)
    : PipelinesException(index is null ? $"run {runId} does not exist" : $"run {runId} has no task {index}", retryHelps: false)
{
    public string RunId { get; } = runId;

    /// <summary>The task asked for, when the run exists but that task does not.</summary>
    public int? Index { get; } = index;
}
