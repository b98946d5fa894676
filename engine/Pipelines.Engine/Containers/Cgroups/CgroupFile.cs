using System.Globalization;

namespace Pipelines.Containers.Cgroups;

/// <summary>
/// Reading and writing the kernel's small cgroup files. A cgroup comes and goes with its
/// container, so a file that is not there (or not ours to read) is null or false, never an
/// exception: the caller says what that means.
/// </summary>
public static class CgroupFile
{
    /// <summary>A cgroup file's content, trimmed; null when it is not there.</summary>
    public static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>A cgroup file's first number; null when it is not there or says "max".</summary>
    public static long? ReadNumber(string path) =>
        Read(path) is { } text && long.TryParse(text.Split('\n')[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : null;

    /// <summary>The number of a "name value" line of a cgroup file such as cpu.stat, memory.stat or cgroup.events; null when it has none.</summary>
    public static long? Field(string? text, string name)
    {
        foreach (var line in (text ?? "").Split('\n'))
        {
            if (line.Length > name.Length && line.StartsWith(name, StringComparison.Ordinal) && line[name.Length] == ' ')
            {
                return long.TryParse(line.AsSpan(name.Length + 1), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
            }
        }

        return null;
    }

    /// <summary>Writes <paramref name="value"/>; false when the kernel refused it or the file is not there.</summary>
    public static bool TryWrite(string path, string value)
    {
        try
        {
            File.WriteAllText(path, value);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Removes a cgroup's folder (rmdir: it holds only the kernel's files, and goes once it has no
    /// child and no process); true when it is gone, false when the kernel keeps it for now.
    /// </summary>
    public static bool TryRemove(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: false);
            return true;
        }
        catch (DirectoryNotFoundException)
        {
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Joins a cgroup (a path from the root of a hierarchy, with or without its leading '/') to a hierarchy's mount point.</summary>
    public static string Under(string mount, string cgroup) =>
        cgroup.Trim('/') is { Length: > 0 } relative ? Path.Combine(mount, relative) : mount;
}
