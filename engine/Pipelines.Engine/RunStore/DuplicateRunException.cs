namespace Pipelines.RunStore;

/// <summary>A run was created with the id of a run that exists already; nothing was written.</summary>
internal sealed class DuplicateRunException(string runId, Exception? inner = null)
    : PipelinesException($"run {runId} exists already", retryHelps: false, inner)
{
    public string RunId { get; } = runId;
}
