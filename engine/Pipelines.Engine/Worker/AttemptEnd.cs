using Pipelines.Containers;
using Pipelines.Containers.Warm;

namespace Pipelines.Worker;

/// <summary>
/// How one attempt ended, as the <see cref="AttemptShell"/> sorted it: it ran to its end (its
/// <see cref="Result"/>, whose own success or failure is the algorithm's), or it was stopped or
/// never ran (<see cref="Stop"/>, with the reason). A warm container's lease is held until this is
/// disposed, so that the caller can take what the request left in its folders first.
/// </summary>
internal sealed class AttemptEnd<T>(T? result, AttemptStop? stop, WarmLease? lease = null, ImageArrival? image = null) : IAsyncDisposable
    where T : class
{
    /// <summary>What the attempt's run returned; null when it was stopped or never ran.</summary>
    public T? Result => result;

    /// <summary>Why the attempt did not run to its end; null when it did.</summary>
    public AttemptStop? Stop => stop;

    /// <summary>The warm container's lease, held until this end is disposed; null for a container of its own.</summary>
    public WarmLease? Lease => lease;

    /// <summary>How the warm container's image arrived when the engine lacked it; null when it was there (a container of its own says so in its result).</summary>
    public ImageArrival? Image => image;

    /// <summary>Whether the request waited for its warm container to start.</summary>
    public bool ColdStart => lease?.ColdStart ?? false;

    /// <summary>The warm container that served the request, if one did.</summary>
    public string? ContainerId => lease?.ContainerId;

    public static AttemptEnd<T> Stopped(AttemptStopKind kind, string reason) => new(null, new AttemptStop(kind, reason));

    public ValueTask DisposeAsync() => lease?.DisposeAsync() ?? ValueTask.CompletedTask;
}

/// <summary>Why an attempt did not run to its end.</summary>
internal sealed record AttemptStop(AttemptStopKind Kind, string Reason)
{
    /// <summary>The warm container broke by passing the request's timeout (an http request, or a hung fork helper).</summary>
    public bool TimedOut { get; init; }

    /// <summary>The tenant's quota that kept a container from starting (<see cref="AttemptStopKind.TenantQuota"/>).</summary>
    public Quotas.QuotaRefusal? Quota { get; init; }

    /// <summary>What the container printed until it was stopped (a vacate, a cancel, a quota); null where the runtime could not say.</summary>
    public string? StoppedLog { get; init; }

    public static readonly AttemptStop Vacated = new(AttemptStopKind.Vacated, "vacated: the machine's owner needed it back");
}

/// <summary>The ways an attempt is stopped or refused, each a rule of the <see cref="AttemptShell"/>.</summary>
internal enum AttemptStopKind
{
    /// <summary>The harvester left no room within Harvest:AdmissionHold (a function request; a task waits at its delivery).</summary>
    NotAdmitted,

    /// <summary>The warm containers are all busy, up to max, and the queue is full.</summary>
    QueueFull,

    /// <summary>No container could start for it: its tenant's warm containers are at the quota WarmContainers (not the function's failure).</summary>
    TenantQuota,

    /// <summary>No container could be started (its image, the fork helper, a server that never listened).</summary>
    NotStarted,

    /// <summary>The warm container died, hung or broke the protocol during the request; it is replaced.</summary>
    Broken,

    /// <summary>The attempt wrote past a quota of its folders, or the disk under them ran short; it was stopped.</summary>
    OverQuota,

    /// <summary>A user cancelled the run; the attempt was stopped.</summary>
    Cancelled,

    /// <summary>The harvester vacated it: the machine's owner needed the machine.</summary>
    Vacated,
}
