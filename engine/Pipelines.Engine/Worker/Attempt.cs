using Pipelines.Containers;
using Pipelines.Containers.Warm;

namespace Pipelines.Worker;

/// <summary>
/// What the <see cref="AttemptShell"/> needs to know of one attempt besides what it runs: its
/// quotas, its memory (for the harvester's choice under memory pressure), and for a request to a
/// warm container the pool's spec.
/// </summary>
internal sealed record Attempt(OutputLimits Limits, long MemoryBytes)
{
    /// <summary>The warm containers that serve it; null for a container of its own.</summary>
    public WarmSpec? Warm { get; init; }

    /// <summary>The run looked at for a user's cancel while it runs (a batch step); null: only the caller's token cancels.</summary>
    public string? RunId { get; init; }

    /// <summary>
    /// Waits for the harvester's admission first (a function request, which holds no task slot);
    /// a batch step runs inside its task's admission.
    /// </summary>
    public bool AdmitFirst { get; init; }

    /// <summary>The name the warm spec's image was pinned from, so that a missing image can be pulled from its registry.</summary>
    public string? ImageName { get; init; }

    /// <summary>An image seen on the engine in the last seconds needs no look (a function's requests are too quick for one each).</summary>
    public bool RecentlySeenWillDo { get; init; }
}
