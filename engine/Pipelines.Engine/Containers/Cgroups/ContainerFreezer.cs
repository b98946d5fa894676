namespace Pipelines.Containers.Cgroups;

/// <summary>
/// Suspends and resumes one runtime's containers through the kernel's freezer files (v2
/// cgroup.freeze, v1 freezer.state: <see cref="ICgroupHierarchy.Freeze"/>), each container's own
/// cgroup and never a parent, which other workers' containers may share. Not `docker pause`:
/// runc's pause waits for the freeze to complete, thawing and freezing again meanwhile, and on a
/// machine whose owner is busy a task of the idle class may not run to reach the freezer for a
/// long while, so the pause failed after about 0.65 s ("unable to freeze") and its loop cut the
/// owner to about a third meanwhile; asked through the file, the kernel completes the freeze
/// when the task next runs, at no cost to the owner (docs/harvesting.md). `docker pause` remains
/// for a container whose files this worker cannot write (a remote engine, no cgroup parent).
/// Containers are known from their start (<see cref="Started"/>), not listed from the engine at
/// the suspend: one whose start was under way then (a slow start under the idle class on a busy
/// machine) was not running yet, and was never frozen. One that starts while suspended is
/// frozen as soon as it has started.
/// </summary>
internal sealed class ContainerFreezer(Func<IdleCgroup> idle)
{
    private readonly Lock _lock = new();

    // Every started container of this runtime not yet removed, with its own cgroup (null where its files are not ours to write).
    private readonly Dictionary<string, string?> _live = new(StringComparer.Ordinal);
    private readonly HashSet<string> _frozen = new(StringComparer.Ordinal);
    private readonly HashSet<string> _paused = new(StringComparer.Ordinal);
    private bool _suspended;

    /// <summary>
    /// A container of ours has started, in its own <paramref name="cgroup"/> (a path from the
    /// root of each hierarchy; null where its files are not ours to write). While suspended it is
    /// frozen at once; true when it must be paused through the engine instead.
    /// </summary>
    public bool Started(string containerId, string? cgroup)
    {
        lock (_lock)
        {
            _live[containerId] = cgroup;
            return _suspended && !FreezeLocked(containerId, cgroup);
        }
    }

    /// <summary>A container of ours was removed.</summary>
    public void Ended(string containerId)
    {
        lock (_lock)
        {
            _live.Remove(containerId);
            _frozen.Remove(containerId);
            _paused.Remove(containerId);
        }
    }

    /// <summary>Freezes every container of ours through its files: how many, and those to pause through the engine instead.</summary>
    public (int Frozen, IReadOnlyList<string> ToPause) Suspend()
    {
        lock (_lock)
        {
            _suspended = true;
            var toPause = new List<string>();
            foreach (var (id, cgroup) in _live)
            {
                if (!_frozen.Contains(id) && !_paused.Contains(id) && !FreezeLocked(id, cgroup))
                {
                    toPause.Add(id);
                }
            }

            return (_frozen.Count, toPause);
        }
    }

    /// <summary>Thaws what was frozen through its files: how many, and those paused through the engine, to unpause.</summary>
    public (int Thawed, IReadOnlyList<string> ToUnpause) Resume()
    {
        lock (_lock)
        {
            _suspended = false;
            var thawed = _frozen.Count(id => _live.GetValueOrDefault(id) is { } cgroup && idle().Hierarchy.Freeze(cgroup, frozen: false));
            _frozen.Clear();
            var toUnpause = _paused.ToList();
            _paused.Clear();
            return (thawed, toUnpause);
        }
    }

    /// <summary>
    /// Before the engine kills a container: its processes are killed at once through cgroup.kill
    /// where the kernel has it (a frozen cgroup's too; true), else a container frozen here is
    /// thawed first, since a v1-frozen task may not die until it thaws.
    /// </summary>
    public bool Kill(string containerId)
    {
        lock (_lock)
        {
            if (_live.GetValueOrDefault(containerId) is not { } cgroup)
            {
                return false;
            }

            if (idle().Hierarchy.Kill(cgroup))
            {
                return true;
            }

            if (_frozen.Remove(containerId))
            {
                idle().Hierarchy.Freeze(cgroup, frozen: false);
            }

            return false;
        }
    }

    /// <summary>Whether the suspend holds a container of ours (frozen through its files, or paused through the engine).</summary>
    public bool Holds(string containerId)
    {
        lock (_lock)
        {
            return _frozen.Contains(containerId) || _paused.Contains(containerId);
        }
    }

    /// <summary>The own cgroup of a live container of ours; null when it is not one, or its files are not ours.</summary>
    public string? CgroupOf(string containerId)
    {
        lock (_lock)
        {
            return _live.GetValueOrDefault(containerId);
        }
    }

    private bool FreezeLocked(string containerId, string? cgroup)
    {
        if (cgroup is not null && idle().Hierarchy.Freeze(cgroup, frozen: true))
        {
            _frozen.Add(containerId);
            return true;
        }

        _paused.Add(containerId);
        return false;
    }
}
