namespace Pipelines.Containers.Cgroups;

/// <summary>
/// A hybrid machine: every controller on cgroup v1, and a v2 tree beside them
/// (/sys/fs/cgroup/unified) with no controller of its own, where systemd or runc mirror each
/// cgroup with its processes. The CPU class and the counters come from the v1 controllers; the
/// freezer and cgroup.kill, core files of every v2 cgroup, from the v2 tree where the cgroup is
/// there: v2's freezer completes for a task of the idle class on a busy machine as soon as it is
/// asked, and a frozen cgroup can be killed at once. Where a cgroup is not in the tree, the v1
/// freezer is used.
/// </summary>
internal sealed class CgroupHybrid(CgroupV1 controllers, CgroupV2 tree) : ICgroupHierarchy
{
    /// <summary>The v1 controllers.</summary>
    public CgroupV1 Controllers => controllers;

    /// <summary>The v2 tree beside them.</summary>
    public CgroupV2 Tree => tree;

    public string Name => "hybrid cgroup v1 + v2";

    public (string File, string Value) LowestWeight => controllers.LowestWeight;

    public (string File, string Value) HighestWeight => controllers.HighestWeight;

    public IReadOnlyList<string> Folders(string cgroup) => [.. controllers.Folders(cgroup).Union(tree.Folders(cgroup), StringComparer.Ordinal)];

    public string? CpuFolder(string cgroup) => controllers.CpuFolder(cgroup);

    public bool Make(string cgroup) => controllers.Make(cgroup);

    public bool Enter(string cgroup, int pid) => controllers.Enter(cgroup, pid);

    /// <summary>
    /// Freezes in the freezer of <see cref="Freezer"/>; thaws in both, since a cgroup frozen in
    /// the v1 freezer (by a worker that used it, or by hand) stays frozen whatever the v2 tree says.
    /// </summary>
    public bool Freeze(string cgroup, bool frozen)
    {
        if (frozen)
        {
            return Freezer(cgroup).Freeze(cgroup, frozen: true);
        }

        var v1 = controllers.Freeze(cgroup, frozen: false);
        var v2 = tree.Freeze(cgroup, frozen: false);
        return Freezer(cgroup) == tree ? v2 : v1;
    }

    public FreezerState FreezerState(string cgroup) => Freezer(cgroup).FreezerState(cgroup);

    public bool Kill(string cgroup) => tree.Kill(cgroup);

    public long? CpuNanos(string cgroup) => controllers.CpuNanos(cgroup);

    public long? WorkingSet(string cgroup) => controllers.WorkingSet(cgroup);

    public CgroupReading Read(string cgroup, CgroupFiles? files = null) => controllers.Read(cgroup, files);

    public bool ResetPeak(string cgroup, CgroupFiles? files = null) => controllers.ResetPeak(cgroup, files);

    private ICgroupHierarchy Freezer(string cgroup) =>
        File.Exists(Path.Combine(CgroupFile.Under(tree.Root, cgroup), "cgroup.freeze")) ? tree : controllers;
}
