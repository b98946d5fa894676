namespace Pipelines.Containers;

/// <summary>
/// Suspends and resumes this process's running containers (the cgroup freezer, through `docker
/// pause`), for the harvester. The time they are held suspended is counted on the runtime's
/// <see cref="SuspensionClock"/>, so that no timeout counts it.
/// </summary>
public interface IContainerSuspender
{
    /// <summary>Pauses every running container of this process; returns how many it paused.</summary>
    Task<int> SuspendAllAsync(CancellationToken cancellationToken);

    /// <summary>Resumes every paused container of this process; returns how many it resumed.</summary>
    Task<int> ResumeAllAsync(CancellationToken cancellationToken);
}
