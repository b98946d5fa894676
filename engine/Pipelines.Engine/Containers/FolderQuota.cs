using Pipelines.Containers.Warm;
using Pipelines.Model;
using Pipelines.Storage;

namespace Pipelines.Containers;

/// <summary>
/// The host folders an attempt can write (a step's /out, a warm container's folders), their
/// quotas, and how the disk under them is named in a reason: what a running attempt is measured
/// against (Worker.AttemptWatch), and an idle warm container between requests (<see cref="DockerWarmPool"/>).
/// </summary>
internal sealed record FolderQuota(IReadOnlyList<WatchedFolder> Folders, OutputLimits Limits, string Disk)
{
    /// <summary>
    /// The folders of a warm container a request can write (fork: /out, given as
    /// <paramref name="outDir"/>, and the control folder /run/pipelines; http: the control
    /// folder, where its server's socket is), host folders under Docker:WarmRoot. The same
    /// folders hold an idle warm container to its quotas between requests.
    /// </summary>
    public static FolderQuota ForWarm(string? outDir, string? controlDir, OutputLimits limits)
    {
        var folders = new List<WatchedFolder>(2);
        if (outDir is not null)
        {
            folders.Add(new(outDir, ContainerLayout.Out));
        }

        if (controlDir is not null)
        {
            folders.Add(new(controlDir, WarmLayout.Control));
        }

        var disk = $"the warm containers' disk ({Path.GetDirectoryName(folders.Count == 0 ? "" : folders[0].Host) ?? "?"}, under Docker:WarmRoot)";
        return new FolderQuota(folders, limits, disk);
    }

    /// <summary>
    /// Why the attempt must stop now, or null: what its folders hold against its quotas, and
    /// their disk's free space (<paramref name="minFree"/>, Worker:MinScratchFree). The one
    /// home of the rule, for a running attempt and for an idle warm container alike; for an idle
    /// one (<paramref name="idle"/>) a short disk is its reason only when it holds bytes there,
    /// since stopping a container that wrote nothing frees nothing. Also what was counted (the
    /// walk stops once a quota is passed).
    /// </summary>
    public (string? Reason, long Bytes) Over(long minFree, bool idle = false)
    {
        long files = 0, bytes = 0, held = 0;
        var wrote = new List<string>(Folders.Count);
        foreach (var folder in Folders)
        {
            var (f, b, tooDeep) = OutputFolder.Measure(folder.Host, Limits);
            if (tooDeep)
            {
                return ($"it nested folders more than {OutputFolder.MaxDepth} deep in {folder.Shown}, deeper than any output path can be ({OutputFolder.MaxPathBytes} bytes)", bytes + b);
            }

            files += f;
            bytes += b;
            if (f > 0)
            {
                wrote.Add(folder.Shown);
            }

            // What no walk sees: files the container deleted but holds open there (their disk is taken all the same).
            var hidden = DeletedFiles.HeldUnder(folder.Host);
            if (hidden > 0)
            {
                bytes += hidden;
                held += hidden;
                if (f == 0)
                {
                    wrote.Add(folder.Shown);
                }
            }
        }

        var where = wrote.Count == 0 ? Folders[0].Shown : string.Join(" and ", wrote);
        if (files > Limits.MaxFiles)
        {
            return ($"it wrote more than {Limits.MaxFiles} files and folders to {where}, over its quota ({Limits.FilesSource})", bytes);
        }

        if (bytes > Limits.MaxBytes)
        {
            var deleted = held > 0 ? $" ({Quantities.FormatSize(held)} of it in files it deleted but holds open)" : "";
            return ($"it wrote more than {Quantities.FormatSize(Limits.MaxBytes)} to {where}{deleted}, over its quota ({Limits.BytesSource})", bytes);
        }

        if (idle && bytes == 0)
        {
            return (null, 0);
        }

        var (free, total) = NoFollow.Space(Folders[0].Host);
        var reserve = Math.Min(minFree, total / 10);
        return (free < reserve ? $"{Disk} has only {Quantities.FormatSize(free)} free, less than the {Quantities.FormatSize(reserve)} kept in reserve (Worker:MinScratchFree)" : null, bytes);
    }
}

/// <summary>A host folder an attempt can write, and where the attempt sees it (for the reason).</summary>
internal sealed record WatchedFolder(string Host, string Shown);
