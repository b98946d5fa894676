using Pipelines.Containers;
using Pipelines.Containers.Cgroups;

namespace Pipelines.Tests.Harvest;

/// <summary>Where the freezer of a container of ours is, read as the engine reads it (the machine's hierarchy: v2 cgroup.freeze where the container's cgroup is in a v2 tree, else v1 freezer.state).</summary>
internal static class Freezer
{
    /// <summary>The freezer of a container under <paramref name="parent"/> (a cgroupfs parent's name), wherever under it the container runs.</summary>
    public static FreezerState StateOf(string parent, string containerId) => StateOf(new IdleCgroup(parent, "test", Idle: false), containerId);

    /// <summary>The freezer of a container under <paramref name="idle"/>'s parent, wherever under it the container runs.</summary>
    public static FreezerState StateOf(IdleCgroup idle, string containerId) =>
        idle.FindContainer(containerId) is { } cgroup ? idle.Hierarchy.FreezerState(cgroup) : FreezerState.Gone;

    /// <summary>Whether the freezer holds it: frozen, or freezing until each of its tasks next runs (a task of the idle class on a busy machine may take a while).</summary>
    public static bool Holds(FreezerState state) => state is FreezerState.Frozen or FreezerState.Freezing;
}
