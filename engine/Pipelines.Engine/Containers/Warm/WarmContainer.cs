using Pipelines.Containers.Cgroups;
using Pipelines.Storage;

namespace Pipelines.Containers.Warm;

/// <summary>
/// One long-lived container of one owner: its Docker id, its host folders, and its channel (the
/// fork helper's connection, or an HttpClient on the image's socket). State is changed under the
/// owner's lock in <see cref="DockerWarmPool"/>. What it holds open (its folders in fork mode,
/// its cgroup's counter files) is closed by <see cref="Dispose"/> when the pool removes it, which
/// it does only once no lease holds it.
/// </summary>
internal sealed class WarmContainer(string id, string folder, WarmSpec spec, Task<long> exited) : IDisposable
{
    public string Id { get; } = id;

    public string ShortId => Id[..Math.Min(12, Id.Length)];

    /// <summary>The host folder that holds in/, out/, steps/ and run/ (the control folder).</summary>
    public string Folder { get; } = folder;

    public string InDir => Path.Combine(Folder, "in");

    public string OutDir => Path.Combine(Folder, "out");

    public string StepsDir => Path.Combine(Folder, "steps");

    public string ControlDir => Path.Combine(Folder, "run");

    public WarmSpec Spec { get; } = spec;

    /// <summary>
    /// Fork mode: in/, out/, steps/ and run/ opened once (<see cref="OpenFolders"/>), so that the
    /// folders emptied after each request are read through a descriptor, with no path walked
    /// (docs/benchmarks.md, "A fork request's file work"). Nothing the container does can put
    /// another folder in their place: they are its mount points' host folders, whose parent it
    /// never sees. Null in http mode.
    /// </summary>
    public NoFollow.SafeDirectory? In { get; private set; }

    /// <inheritdoc cref="In"/>
    public NoFollow.SafeDirectory? Out { get; private set; }

    /// <inheritdoc cref="In"/>
    public NoFollow.SafeDirectory? Steps { get; private set; }

    /// <inheritdoc cref="In"/>
    public NoFollow.SafeDirectory? Control { get; private set; }

    /// <summary>The inode flags <see cref="Out"/> and <see cref="Control"/> had when opened, put back after each request (<see cref="NoFollow.ResetFolder"/>).</summary>
    public int? OutFlags { get; private set; }

    /// <inheritdoc cref="OutFlags"/>
    public int? ControlFlags { get; private set; }

    /// <summary>Its cgroup's counter files, kept open between requests (<see cref="CgroupFiles.Kept"/>).</summary>
    public CgroupFiles Counters { get; } = CgroupFiles.Kept();

    /// <summary>Completes with the exit code when the container ends, for whatever reason.</summary>
    public Task<long> Exited { get; } = exited;

    public ForkChannel? Fork { get; set; }

    public HttpClient? Http { get; set; }

    /// <summary>Requests it serves now.</summary>
    public int InFlight { get; set; }

    /// <summary>Leases it was given, ever (the first one given to a waiter was a cold start).</summary>
    public int Leases;

    /// <summary>Why it must not serve again (it crashed, hung, broke the protocol, or was discarded); null while fit.</summary>
    public string? Broken { get; set; }

    /// <summary>Counts idle periods, so that an idle timer set before a later use does nothing.</summary>
    public long IdleEpoch { get; set; }

    public ITimer? IdleTimer { get; set; }

    /// <summary>The tenant's warm-container slot it holds (<see cref="WarmSpec.Tenant"/>), given back when it is removed; null when none.</summary>
    public string? Slot { get; set; }

    public int Capacity => Spec.Mode == WarmMode.Fork ? 1 : Math.Max(1, Spec.Concurrency);

    /// <summary>Opens the fork-mode folders (<see cref="In"/>), never through a link; throws when one cannot be opened.</summary>
    public void OpenFolders()
    {
        In = NoFollow.OpenDirectory(InDir);
        Out = NoFollow.OpenDirectory(OutDir);
        Steps = NoFollow.OpenDirectory(StepsDir);
        Control = NoFollow.OpenDirectory(ControlDir);
        OutFlags = NoFollow.InodeFlags(Out);
        ControlFlags = NoFollow.InodeFlags(Control);
    }

    public void Dispose()
    {
        In?.Dispose();
        Out?.Dispose();
        Steps?.Dispose();
        Control?.Dispose();
        Counters.Dispose();
    }
}
