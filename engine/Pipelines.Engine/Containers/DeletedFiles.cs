using System.Globalization;
using System.Text;
using Pipelines.Storage;

namespace Pipelines.Containers;

/// <summary>
/// The disk taken by files a container deleted but keeps open (or mapped): a process that opens
/// <c>/out/f</c>, removes it and writes on is invisible to a walk of <c>/out</c>, yet fills the disk
/// under it. The kernel still names such a file under <c>/proc/PID/fd</c> (and <c>map_files</c>),
/// as the process sees it ("/out/f (deleted)"), with the mount it was opened through; the mount's
/// root says which host folder that is. Read for processes in another mount namespace than this
/// one (containers), at most twice a second for all the attempts of this process, and matched
/// to a host folder by device and path inside its file system, so a file counts for the folder
/// it was written in and nowhere else. <see cref="FolderQuota"/> adds it to what a walk counts.
/// </summary>
internal static class DeletedFiles
{
    private const string Deleted = " (deleted)";
    private static readonly TimeSpan Fresh = TimeSpan.FromMilliseconds(500);
    private static readonly Lock Gate = new();
    private static (long At, IReadOnlyList<Held> Files)? _last;

    /// <summary>One deleted file held open: its file system (statx's device), its path inside it, and its allocated bytes.</summary>
    internal readonly record struct Held(ulong Device, string PathInFileSystem, ulong Inode, long Allocated);

    /// <summary>The allocated bytes of deleted files held open under <paramref name="hostFolder"/> (0 where /proc cannot tell).</summary>
    public static long HeldUnder(string hostFolder)
    {
        if (!OperatingSystem.IsLinux() || Locate(hostFolder) is not { } folder)
        {
            return 0;
        }

        long bytes = 0;
        foreach (var file in Current())
        {
            if (file.Device == folder.Device && file.PathInFileSystem.StartsWith(folder.Path, StringComparison.Ordinal))
            {
                bytes += file.Allocated;
            }
        }

        return bytes;
    }

    /// <summary>The deleted files held open by processes of other mount namespaces, read again when older than half a second.</summary>
    private static IReadOnlyList<Held> Current()
    {
        lock (Gate)
        {
            if (_last is { } last && Environment.TickCount64 - last.At < Fresh.TotalMilliseconds)
            {
                return last.Files;
            }

            var files = Scan();
            _last = (Environment.TickCount64, files);
            return files;
        }
    }

    /// <summary>Every deleted file held open (by descriptor or mapping) by a process outside this mount namespace, each inode once.</summary>
    internal static IReadOnlyList<Held> Scan()
    {
        var own = Link("/proc/self/ns/mnt");
        var found = new Dictionary<(ulong, ulong), Held>();
        var mounts = new Dictionary<string, Dictionary<int, MountLine>>(StringComparer.Ordinal);
        foreach (var dir in SafeList("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsAsciiDigit(name[0]) || !int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            {
                continue;
            }

            var ns = Link(dir + "/ns/mnt");
            if (ns is null || ns == own)
            {
                continue;
            }

            if (!mounts.TryGetValue(ns, out var table))
            {
                table = MountInfo(dir + "/mountinfo");
                mounts[ns] = table;
            }

            Collect(dir + "/fd", dir + "/fdinfo", table, found);
            Collect(dir + "/map_files", null, table, found);
        }

        return [.. found.Values];
    }

    private static void Collect(string links, string? infos, Dictionary<int, MountLine> table, Dictionary<(ulong, ulong), Held> found)
    {
        foreach (var entry in SafeList(links))
        {
            var target = Link(entry);
            if (target is null || !target.EndsWith(Deleted, StringComparison.Ordinal) || !target.StartsWith('/'))
            {
                continue;
            }

            // The kernel's " (deleted)" is also what a live file may be named: only a file with no
            // name left (no link) is invisible to the walk; one still named is counted there.
            if (!UnixFile.TryStat(entry, followLinks: true, out var status, out _) || status.Kind != UnixFileKind.Regular || status.Links != 0 || found.ContainsKey((status.Device, status.Inode)))
            {
                continue;
            }

            var seen = target[..^Deleted.Length];
            var mount = infos is not null && MountId(Path.Combine(infos, Path.GetFileName(entry))) is { } id && table.TryGetValue(id, out var m)
                ? m
                : Longest(table.Values, seen);
            if (mount is null || !Within(seen, mount.Value.MountPoint))
            {
                continue;
            }

            var inFileSystem = Join(mount.Value.Root, seen[mount.Value.MountPoint.TrimEnd('/').Length..]);
            found[(status.Device, status.Inode)] = new Held(status.Device, inFileSystem, status.Inode, status.Allocated);
        }
    }

    /// <summary>Where a host folder is in its file system (device, path from the file system's root, ending in "/"), from this process's mounts.</summary>
    internal static (ulong Device, string Path)? Locate(string hostFolder)
    {
        string full;
        try
        {
            full = Path.GetFullPath(hostFolder);
        }
        catch (Exception e) when (e is ArgumentException or IOException)
        {
            return null;
        }

        if (!UnixFile.TryStat(full, followLinks: false, out var status, out _) || status.Kind != UnixFileKind.Directory)
        {
            return null;
        }

        var own = MountInfo("/proc/self/mountinfo").Values.Where(m => m.Device == status.Device);
        if (Longest(own, full) is not { } mount)
        {
            return null;
        }

        return (status.Device, Join(mount.Root, full[mount.MountPoint.TrimEnd('/').Length..]).TrimEnd('/') + "/");
    }

    private static MountLine? Longest(IEnumerable<MountLine> mounts, string path)
    {
        MountLine? best = null;
        foreach (var m in mounts)
        {
            if (Within(path, m.MountPoint) && (best is null || m.MountPoint.Length > best.Value.MountPoint.Length))
            {
                best = m;
            }
        }

        return best;
    }

    private static bool Within(string path, string mountPoint) =>
        mountPoint == "/" || path == mountPoint || path.StartsWith(mountPoint.TrimEnd('/') + "/", StringComparison.Ordinal);

    private static string Join(string root, string rest) => root == "/" ? (rest.Length == 0 ? "/" : rest) : root.TrimEnd('/') + rest;

    /// <summary>One line of /proc/PID/mountinfo: the mount's id, device (statx's encoding), root in its file system and mount point.</summary>
    internal readonly record struct MountLine(int Id, ulong Device, string Root, string MountPoint);

    internal static Dictionary<int, MountLine> MountInfo(string file)
    {
        var table = new Dictionary<int, MountLine>();
        string[] lines;
        try
        {
            lines = File.ReadAllLines(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return table;
        }

        foreach (var line in lines)
        {
            if (ParseMountLine(line) is { } m)
            {
                table[m.Id] = m;
            }
        }

        return table;
    }

    /// <summary>"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": id, parent, major:minor, root, mount point (octal escapes undone).</summary>
    internal static MountLine? ParseMountLine(string line)
    {
        var f = line.Split(' ');
        if (f.Length < 5 || !int.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return null;
        }

        var dev = f[2].Split(':');
        if (dev.Length != 2 || !uint.TryParse(dev[0], NumberStyles.None, CultureInfo.InvariantCulture, out var major) || !uint.TryParse(dev[1], NumberStyles.None, CultureInfo.InvariantCulture, out var minor))
        {
            return null;
        }

        return new MountLine(id, ((ulong)major << 32) | minor, Unescape(f[3]), Unescape(f[4]));
    }

    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var bytes = new List<byte>(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && IsOctal(field, i + 1))
            {
                bytes.Add((byte)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(field[i].ToString()));
            }
        }

        return Encoding.UTF8.GetString([.. bytes]);
    }

    private static bool IsOctal(string s, int at) =>
        at + 3 <= s.Length && s[at] is >= '0' and <= '3' && s[at + 1] is >= '0' and <= '7' && s[at + 2] is >= '0' and <= '7';

    private static int? MountId(string fdinfo)
    {
        try
        {
            foreach (var line in File.ReadLines(fdinfo))
            {
                if (line.StartsWith("mnt_id:", StringComparison.Ordinal) && int.TryParse(line.AsSpan(7).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                {
                    return id;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The descriptor was closed meanwhile.
        }

        return null;
    }

    private static string? Link(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static IEnumerable<string> SafeList(string dir)
    {
        try
        {
            return Directory.GetFileSystemEntries(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
