using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>Builds a step's <c>resources</c>: the limits its container runs under.</summary>
internal static class ResourcesSection
{
    public static Resources Build(YamlMappingNode? node, string path, ParseContext ctx)
    {
        var r = Resources.Default;
        if (node is null)
        {
            return r;
        }

        var f = new YamlFields(node, path, ctx);
        f.Known("cpus", "memory", "timeout", "pids", "disk", "files");
        var cpusText = f.String("cpus", required: false);
        var cpus = r.Cpus;
        if (cpusText is not null)
        {
            if (!double.TryParse(cpusText, NumberStyles.Float, CultureInfo.InvariantCulture, out cpus) || cpus <= 0 || cpus > 1024)
            {
                ctx.Add(f.Node("cpus")!, path + ".cpus", $"'{cpusText}' is not a number of CPUs (e.g. 1, 0.5, 2)");
                cpus = r.Cpus;
            }
        }

        var memory = r.MemoryBytes;
        var memText = f.String("memory", required: false);
        if (memText is not null)
        {
            if (!Quantities.TryParseSize(memText, out memory))
            {
                ctx.Add(f.Node("memory")!, path + ".memory", $"'{memText}' is not a size (e.g. 512Mi, 2Gi, 1G)");
                memory = r.MemoryBytes;
            }
            else if (memory < 6 * 1024 * 1024)
            {
                ctx.Add(f.Node("memory")!, path + ".memory", $"'{memText}' is below the 6Mi that a container needs at least");
            }
        }

        var timeout = r.Timeout;
        var timeoutText = f.String("timeout", required: false);
        if (timeoutText is not null)
        {
            if (!Quantities.TryParseDuration(timeoutText, out timeout) || timeout <= TimeSpan.Zero)
            {
                ctx.Add(f.Node("timeout")!, path + ".timeout", $"'{timeoutText}' is not a duration (e.g. 30s, 10m, 1h30m)");
                timeout = r.Timeout;
            }
        }

        var pids = f.Int("pids", required: false) ?? (int)r.Pids;
        if (pids < 1)
        {
            ctx.Add(f.Node("pids")!, path + ".pids", $"is {pids}; a container needs at least 1 process");
        }

        long disk = 0;
        var diskText = f.String("disk", required: false);
        if (diskText is not null && (!Quantities.TryParseSize(diskText, out disk) || disk <= 0))
        {
            ctx.Add(f.Node("disk")!, path + ".disk", $"'{diskText}' is not a size (e.g. 100Mi, 10Gi): the bytes the step may leave in /out");
            disk = 0;
        }

        var files = f.Int("files", required: false) ?? 0;
        if (files < 0 || f.Node("files") is not null && files == 0)
        {
            ctx.Add(f.Node("files")!, path + ".files", $"is {files}; the number of files a step may leave in /out is at least 1");
            files = 0;
        }

        return new Resources(cpus, memory, timeout, Math.Max(pids, 1), disk, files);
    }
}
