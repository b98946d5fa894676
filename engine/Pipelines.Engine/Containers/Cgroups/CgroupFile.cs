using System.Buffers.Text;
using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;

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
            using var handle = OpenRead(path);
            return ReadAll(handle);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// A cgroup file opened for reading, by one open call (File.OpenHandle adds an fstat and a
    /// lock, and a warm request reads these files four times); read from offset 0 each time, the
    /// kernel renders it anew.
    /// </summary>
    internal static SafeFileHandle OpenRead(string path) => Storage.UnixFile.OpenRead(path, followLinks: true);

    /// <summary>A cgroup file opened for writing a value at offset 0 (<see cref="Write"/>).</summary>
    internal static SafeFileHandle OpenWrite(string path) =>
        File.OpenHandle(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);

    /// <summary>The whole content of an open cgroup file, read from its start, trimmed.</summary>
    internal static string ReadAll(SafeFileHandle handle)
    {
        var buffer = new byte[4096];
        var total = 0;
        int n;
        while ((n = Storage.UnixFile.ReadAt(handle, buffer.AsSpan(total), total)) > 0)
        {
            total += n;
            if (total == buffer.Length)
            {
                Array.Resize(ref buffer, buffer.Length * 2);
            }
        }

        return Encoding.UTF8.GetString(buffer, 0, total).Trim();
    }

    /// <summary>An open cgroup file's first number, read from its start into <paramref name="buffer"/> (<see cref="NumberBuffer"/> bytes).</summary>
    internal static long? ReadNumber(SafeFileHandle handle, Span<byte> buffer) =>
        ParseNumber(buffer[..Storage.UnixFile.ReadAt(handle, buffer, 0)]);

    /// <summary>One write(2) of the whole value at offset 0, as the kernel takes a cgroup file's value.</summary>
    internal static void Write(SafeFileHandle handle, string value) => RandomAccess.Write(handle, Encoding.UTF8.GetBytes(value), 0);

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
        try
        {
            using var handle = OpenRead(path);
            return ReadNumber(handle, buffer);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
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
            // A warm request resets its container's memory peak this way each time.
            using var handle = OpenWrite(path);
            Write(handle, value);
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
