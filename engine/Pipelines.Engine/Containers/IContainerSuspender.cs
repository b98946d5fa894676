namespace Pipelines.Containers;

/// <summary>
/// Suspends and resumes the containers this engine started (the kernel's freezer), for the
/// harvester: every one that has started, and, while suspended, each one that starts. The time
/// they are held suspended is counted on the runtime's <see cref="SuspensionClock"/>, so that no
/// timeout counts it.
/// </summary>
internal interface IContainerSuspender
{
    /// <summary>Freezes every container of this engine, and each one that starts until the resume; returns how many it froze.</summary>
    Task<int> SuspendAllAsync(CancellationToken cancellationToken);

    /// <summary>Thaws every container it froze; returns how many it thawed.</summary>
    Task<int> ResumeAllAsync(CancellationToken cancellationToken);
}
