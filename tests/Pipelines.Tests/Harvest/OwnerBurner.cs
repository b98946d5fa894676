using System.Diagnostics;
using System.Globalization;
using Pipelines.Containers;

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
    private static readonly string[] Controllers = ["cpu", "cpuacct", "memory"];
    private readonly List<Process> _loops = [];

    /// <summary>The cgroup the loops run in, relative to the cgroup root (Harvest:OwnerCgroup).</summary>
    public string Group => cgroup;

    public void Start()
    {
        foreach (var controller in Controllers)
        {
            Directory.CreateDirectory(IdleCgroup.PathOf(controller, cgroup));
        }

        File.WriteAllText(Path.Combine(IdleCgroup.PathOf("cpu", cgroup), "cpu.shares"), "262144");
        for (var i = 0; i < (loops > 0 ? loops : Environment.ProcessorCount); i++)
        {
            var p = Process.Start(new ProcessStartInfo("sh", ["-c", "while :; do :; done"]) { UseShellExecute = false })!;
            _loops.Add(p);
            foreach (var controller in Controllers)
            {
                File.WriteAllText(Path.Combine(IdleCgroup.PathOf(controller, cgroup), "cgroup.procs"), p.Id.ToString(CultureInfo.InvariantCulture));
            }
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
            foreach (var controller in Controllers)
            {
                try
                {
                    Directory.Delete(IdleCgroup.PathOf(controller, cgroup));
                }
                catch (DirectoryNotFoundException)
                {
                    // Never made.
                }
            }
        }
    }
}
