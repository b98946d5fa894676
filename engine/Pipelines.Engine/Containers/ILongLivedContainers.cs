namespace Pipelines.Containers;

/// <summary>
/// Containers that live longer than one run, for the warm pool: each started under the same
/// lock-down as a one-shot container (<see cref="IContainerRuntime"/>), then waited for, killed,
/// removed, read and looked at by its id. A missing image is a <see cref="PipelinesException"/>
/// that says so and does not help to retry; an engine out of reach is one that does.
/// </summary>
public interface ILongLivedContainers
{
    /// <summary>
    /// Creates and starts a locked-down container of <paramref name="spec"/> (its timeout is not
    /// applied: the container lives until it ends or is killed) and returns its id. A container
    /// that could not start is removed before this throws.
    /// </summary>
    Task<string> StartAsync(ContainerSpec spec, CancellationToken cancellationToken);

    /// <summary>Waits for a container to end and returns its exit code (128 plus the signal that killed it).</summary>
    Task<long> WaitAsync(string id, CancellationToken cancellationToken);

    /// <summary>
    /// Kills a container at once; one that has ended or is gone is no error. Not cancellable: a
    /// container that must end, ends. An engine out of reach throws.
    /// </summary>
    Task KillAsync(string id);

    /// <summary>
    /// Removes a container, running or not; one that is gone is no error. Never throws: with the
    /// engine out of reach the container keeps its labels, and <see cref="IContainerSweep"/> removes it later.
    /// </summary>
    Task RemoveAsync(string id);

    /// <summary>A container's stdout and stderr as they came, at most <paramref name="maxBytes"/> (the first and last halves, the cut said).</summary>
    Task<string> ReadLogAsync(string id, int maxBytes, CancellationToken cancellationToken);

    /// <summary>A container's state, labels and lock-down as the engine holds them; null when there is no such container.</summary>
    Task<ContainerInfo?> InspectAsync(string id, CancellationToken cancellationToken);

    /// <summary>The time this runtime's containers were held suspended (<see cref="IContainerSuspender"/>), which no timeout counts.</summary>
    SuspensionClock Suspensions { get; }

    /// <summary>Why a container's use cannot be read from its cgroup's counters, or null when it can.</summary>
    string? Unmeasurable { get; }

    /// <summary>A container's own cgroup, from the root of each hierarchy, whose counters say what it used.</summary>
    string CgroupOf(string id);
}
