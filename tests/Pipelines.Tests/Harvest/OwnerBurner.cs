using System.Diagnostics;
using Pipelines.Containers.Cgroups;

namespace Pipelines.Tests.Harvest;

/// <summary>
/// A synthetic owner: busy-loop shells (one per core unless told fewer), started and stopped by
/// the test, in a cgroup of their own (<see cref="Cgroup"/>, or one given) with the highest
/// cpu.shares, so that they get the machine first as an owner's service would, even on a machine
/// that others keep busy.
/// </summary>
internal sealed class OwnerBurner(int loops = 0, string cgroup = OwnerBurner.Cgroup) : IDisposable
{
    public const string Cgroup = "pipelines-tests-owner";
    private readonly List<Process> _loops = [];

    /// <summary>The cgroup the loops run in, relative to the cgroup root (Harvest:OwnerCgroup).</summary>
    public string Group => cgroup;

    public void Start()
    {
        var machine = CgroupMounts.Machine;
        Assert.True(machine.Make(cgroup), $"the owner's cgroup {cgroup} could not be made ({machine.Name})");
        var (file, highest) = machine.HighestWeight;
        File.WriteAllText(Path.Combine(machine.CpuFolder(cgroup)!, file), highest);
        for (var i = 0; i < (loops > 0 ? loops : Environment.ProcessorCount); i++)
        {
            var p = Process.Start(new ProcessStartInfo("sh", ["-c", "while :; do :; done"]) { UseShellExecute = false })!;
            _loops.Add(p);
            Assert.True(machine.Enter(cgroup, p.Id), $"a busy loop could not enter the owner's cgroup {cgroup}");
        }
    }

    public void Stop()
    {
        foreach (var p in _loops)
        {
            p.Kill();
            p.WaitForExit();
            p.Dispose();
        }

        _loops.Clear();
    }

    public void Dispose()
    {
        Stop();
        if (cgroup != Cgroup)
        {
            // A cgroup of this test's own: removed with it (rmdir of an empty cgroup).
            foreach (var folder in CgroupMounts.Machine.Folders(cgroup))
            {
                CgroupFile.TryRemove(folder);
            }
        }
    }
}
