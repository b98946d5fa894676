namespace Pipelines.Harvest;

/// <summary>What the worker knows of the machine's owner: one sample per call, over the time since the last call.</summary>
internal interface IOwnerLoad
{
    /// <summary>The load since the previous call (the first call covers the time since boot).</summary>
    OwnerSample Sample();
}
