namespace Pipelines.Containers;

/// <summary>Where a container is in its life.</summary>
public enum ContainerRunState
{
    /// <summary>Made, not started.</summary>
    Created,

    Running,

    /// <summary>Held by <see cref="IContainerSuspender"/>.</summary>
    Paused,

    /// <summary>Ended, with <see cref="ContainerInfo.ExitCode"/>; not yet removed.</summary>
    Exited,
}

/// <summary>A container as the engine holds it (<see cref="ILongLivedContainers.InspectAsync"/>).</summary>
/// <param name="ExitCode">The exit code once it has ended; null before.</param>
/// <param name="Labels">Its labels: the caller's and <see cref="ContainerLabels"/>.</param>
public sealed record ContainerInfo(string Id, ContainerRunState State, long? ExitCode, bool OomKilled, IReadOnlyDictionary<string, string> Labels, ContainerLockDown LockDown);

/// <summary>
/// The lock-down a container got, as the engine holds it (docs/architecture.md, "Containers"):
/// the user it runs as, its network, a read-only root, the capabilities dropped, no new
/// privileges, and its limits.
/// </summary>
public sealed record ContainerLockDown(
    string User,
    string Network,
    bool ReadOnlyRoot,
    IReadOnlyList<string> DroppedCapabilities,
    bool NoNewPrivileges,
    long MemoryBytes,
    double Cpus,
    long? Pids);
