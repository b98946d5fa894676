namespace Pipelines.Containers;

/// <summary>The labels every container of ours carries, whatever runs it, beside those its caller gives.</summary>
internal static class ContainerLabels
{
    /// <summary>Marks a container as ours (value <c>true</c>), so that a sweep on a shared engine finds only ours.</summary>
    public const string Managed = "org.pipelines.managed";

    /// <summary>The process that made a container (<see cref="ProcessOwner"/>): suspend acts on its own, the sweep on those of dead ones.</summary>
    public const string Owner = "org.pipelines.owner";
}
