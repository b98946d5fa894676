namespace Pipelines.Containers;

/// <summary>The sweep of what dead processes left on the engine (<c>Worker/LeftoverCleaner</c> runs it).</summary>
internal interface IContainerSweep
{
    /// <summary>
    /// Removes the containers of ours (<see cref="ContainerLabels.Managed"/>) whose owner is dead,
    /// running or not: <paramref name="isGone"/> judges the owner label (null when a container has
    /// none). Containers of live owners are left alone. Returns how many it removed.
    /// </summary>
    Task<int> RemoveLeftoversAsync(Func<string?, bool> isGone, CancellationToken cancellationToken);
}
