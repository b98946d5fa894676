namespace Pipelines.Containers.Cgroups;

/// <summary>Where a cgroup's freezer is: v1 freezer.state, or v2 cgroup.freeze with cgroup.events' "frozen".</summary>
public enum FreezerState
{
    /// <summary>The cgroup is not there (its container ended), or has no freezer.</summary>
    Gone,

    /// <summary>Its processes run.</summary>
    Thawed,

    /// <summary>Asked to freeze; some process has not stopped yet (a task of the idle class on a busy machine stops when it next runs).</summary>
    Freezing,

    /// <summary>Every process of it is stopped.</summary>
    Frozen,
}
