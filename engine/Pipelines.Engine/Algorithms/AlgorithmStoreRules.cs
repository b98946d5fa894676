namespace Pipelines.Algorithms;

/// <summary>The refusals both algorithm stores give, in one set of words (<see cref="IAlgorithmStore"/>).</summary>
internal static class AlgorithmStoreRules
{
    /// <summary>A channel pointed at a version that does not exist.</summary>
    public static PipelinesException NoVersion(string name, string version, Exception? inner = null) =>
        new($"{name}@{version} does not exist: a channel names a pushed version", retryHelps: false, inner);

    /// <summary>A delete of a version that channels name (<paramref name="channels"/>: stable first).</summary>
    public static PipelinesException Named(string name, string version, string channels) =>
        new($"{name}@{version} is the {channels} version: promote another version (or abort the canary) before deleting it", retryHelps: false);
}
