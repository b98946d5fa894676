using Pipelines.Settings;

namespace Pipelines.Harvest;

/// <summary>When this machine lends its cycles (configuration Harvest:Policy).</summary>
public enum HarvestPolicy
{
    /// <summary>Run up to Worker:Concurrency tasks whatever the owner does (a machine of our own).</summary>
    Always,

    /// <summary>Take only what the owner leaves: admit when it is quiet, suspend and vacate when it is busy.</summary>
    WhenIdle,

    /// <summary>Take no work at all.</summary>
    Never,
}

/// <summary>
/// Idle-resource harvesting (configuration section Harvest, docs/harvesting.md). Loads are the
/// owner's share of the machine's CPU, 0 to 1, with our own containers' use taken out.
/// The defaults follow HTCondor's desktop policy in spirit (start after a quiet while, suspend
/// at once, vacate after a long suspension), with shorter times for servers.
/// </summary>
public sealed record HarvestOptions
{
    /// <summary>always, when-idle or never: always by default, <see cref="WorkerPolicy"/> for `pipelines worker`.</summary>
    [OneOf("always", "when-idle", "never")]
    public string Policy { get; init; } = "always";

    /// <summary>
    /// The one role with a default of its own: `pipelines worker` lends only what the machine's
    /// owner leaves unless told otherwise (a worker usually runs on someone's machine; an embedded
    /// run or server on the user's own). Layered under the configuration by the worker command.
    /// </summary>
    public const string WorkerPolicy = "when-idle";

    /// <summary><see cref="WorkerPolicy"/> as a configuration layer, under every other source.</summary>
    public static IReadOnlyDictionary<string, string?> WorkerDefaults { get; } = new Dictionary<string, string?> { ["Harvest:Policy"] = WorkerPolicy };

    /// <summary>
    /// The owner's cgroup, relative to the cgroup root (e.g. system.slice/nginx.service), when the
    /// owner's work runs in one: the owner is then that cgroup alone. Unset: the owner is the whole
    /// machine less our containers.
    /// </summary>
    public string? OwnerCgroup { get; init; }

    /// <summary>How often the owner's load is sampled.</summary>
    [Positive]
    public TimeSpan SampleInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A task starts only while the owner's load has stayed below this ...</summary>
    [Between(0, 1)]
    public double StartBelow { get; init; } = 0.5;

    /// <summary>... for this long.</summary>
    public TimeSpan StartAfter { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Running containers are suspended when the owner's load stays above this ...</summary>
    [Between(0, 1)]
    public double SuspendAbove { get; init; } = 0.7;

    /// <summary>... for this long (short: the owner must not wait for us).</summary>
    public TimeSpan SuspendAfter { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Suspended containers resume once the owner's load has stayed below StartBelow for this long.</summary>
    public TimeSpan ResumeAfter { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A task suspended this long is vacated: its container stopped, the task handed back to the queue for another machine.</summary>
    [Positive]
    public TimeSpan VacateAfter { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>When less than this share of memory is available, the largest of our containers is vacated, one per sample.</summary>
    [Between(0, 1)]
    public double MinFreeMemory { get; init; } = 0.1;

    /// <summary>How long a delivered task waits for room before it is handed back to the queue for another machine.</summary>
    public TimeSpan AdmissionHold { get; init; } = TimeSpan.FromSeconds(10);
}
