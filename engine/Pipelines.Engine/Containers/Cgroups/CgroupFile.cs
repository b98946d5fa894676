using System.Buffers.Text;
using System.Globalization;
using System.Text;

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
    /// <remarks>
    /// Read into a buffer on the stack and parsed there: a warm request reads its container's
    /// counters before and after it runs, and a stream, a reader and two strings per file were a
    /// visible part of a request's CPU (docs/benchmarks.md). A first line too long for the buffer
    /// holds no number a long can take.
    /// </remarks>
    public static long? ReadNumber(string path)
    {
        Span<byte> buffer = stackalloc byte[NumberBuffer];
        int read;
        try
        {
            // One open call: File.OpenHandle adds an fstat and a lock, and a warm request reads these files four times.
            using var handle = Storage.UnixFile.OpenRead(path, followLinks: true);
            read = Storage.UnixFile.ReadAt(handle, buffer, 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return ParseNumber(buffer[..read]);
    }

    /// <summary>How much of a file <see cref="ReadNumber"/> reads: a first line longer holds no number a long can take.</summary>
    internal const int NumberBuffer = 64;

    /// <summary>The first line of what was read of a cgroup file (at most <see cref="NumberBuffer"/> bytes) as a number; null when it is not one.</summary>
    internal static long? ParseNumber(ReadOnlySpan<byte> text)
    {
        var end = text.IndexOf((byte)'\n');
        if (end < 0 && text.Length == NumberBuffer)
        {
            return null;
        }

        text = (end < 0 ? text : text[..end]).Trim(" \t\r"u8);
        return Utf8Parser.TryParse(text, out long n, out var used) && used == text.Length ? n : null;
    }

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
            // One write(2) of the whole value at offset 0, as the kernel takes a cgroup file's value
            // (a warm request resets its container's memory peak this way each time).
            using var handle = File.OpenHandle(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            RandomAccess.Write(handle, Encoding.UTF8.GetBytes(value), 0);
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
