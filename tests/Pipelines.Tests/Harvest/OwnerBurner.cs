using System.Diagnostics;
using System.Globalization;
using Pipelines.Containers;

namespace Pipelines.Tests.Harvest;

/// <summary>
/// A synthetic owner: one busy-loop shell per core, started and stopped by the test, in a cgroup
/// of its own (<see cref="Cgroup"/>) with the highest cpu.shares, so that it gets the machine
/// first as an owner's service would, even on a machine that others keep busy.
/// </summary>
internal sealed class OwnerBurner : IDisposable
{
    public const string Cgroup = "pipelines-tests-owner";
    private readonly List<Process> _loops = [];

    public void Start()
    {
        foreach (var controller in new[] { "cpu", "cpuacct", "memory" })
        {
            Directory.CreateDirectory(IdleCgroup.PathOf(controller, Cgroup));
        }

        File.WriteAllText(Path.Combine(IdleCgroup.PathOf("cpu", Cgroup), "cpu.shares"), "262144");
        for (var i = 0; i < Environment.ProcessorCount; i++)
        {
            var p = Process.Start(new ProcessStartInfo("sh", ["-c", "while :; do :; done"]) { UseShellExecute = false })!;
            _loops.Add(p);
            foreach (var controller in new[] { "cpu", "cpuacct", "memory" })
            {
                File.WriteAllText(Path.Combine(IdleCgroup.PathOf(controller, Cgroup), "cgroup.procs"), p.Id.ToString(CultureInfo.InvariantCulture));
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

    public void Dispose() => Stop();
}
