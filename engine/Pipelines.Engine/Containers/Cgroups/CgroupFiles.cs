using Microsoft.Win32.SafeHandles;

namespace Pipelines.Containers.Cgroups;

/// <summary>
/// How a hierarchy reaches a cgroup's counter files: <see cref="Direct"/> opens each file by
/// path every time (an attempt's cgroup, read once); a <see cref="Kept"/> one opens each file
/// once and keeps it, then reads it again from its start (the kernel renders a cgroup file anew
/// for a read at offset 0) and writes it at offset 0. A warm container's counters are read before
/// and after each of its requests: opening the files by path each time (a path walk, the runtime's
/// fstat and advisory lock, a close) was a tenth of the server's kernel time per fork request
/// (docs/benchmarks.md, "A fork request's file work"). A file that cannot be opened is tried again
/// at the next use. A kept set belongs to one container and is disposed when it is removed; the
/// kernel ends reads of a removed cgroup's open files with an error, read as null.
/// </summary>
public sealed class CgroupFiles : IDisposable
{
    private readonly bool _keep;
    private readonly Lock _lock = new();
    private readonly Dictionary<(string Path, bool Write), SafeFileHandle> _open = [];
    private readonly byte[] _number = new byte[CgroupFile.NumberBuffer];
    private bool _disposed;

    private CgroupFiles(bool keep) => _keep = keep;

    /// <summary>Opens each file when it is used, and closes it after.</summary>
    public static CgroupFiles Direct { get; } = new(keep: false);

    /// <summary>A set that keeps the files it opens, for one cgroup's many readings.</summary>
    public static CgroupFiles Kept() => new(keep: true);

    /// <summary>A cgroup file's first number; null when it is not there or says "max" (<see cref="CgroupFile.ParseNumber"/>).</summary>
    public long? ReadNumber(string path)
    {
        if (!_keep)
        {
            return CgroupFile.ReadNumber(path);
        }

        // Read and parsed under the set's lock, in its one buffer.
        return Use(path, write: false, handle => CgroupFile.ReadNumber(handle, _number), null);
    }

    /// <summary>A cgroup file's content, trimmed; null when it is not there.</summary>
    public string? Read(string path)
    {
        if (!_keep)
        {
            return CgroupFile.Read(path);
        }

        return Use<string?>(path, write: false, CgroupFile.ReadAll, null);
    }

    /// <summary>Writes <paramref name="value"/> at offset 0 in one write; false when the kernel refused it or the file is not there.</summary>
    public bool TryWrite(string path, string value) => !_keep
        ? CgroupFile.TryWrite(path, value)
        : Use(path, write: true, handle =>
        {
            CgroupFile.Write(handle, value);
            return true;
        }, false);

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            foreach (var handle in _open.Values)
            {
                handle.Dispose();
            }

            _open.Clear();
        }
    }

    private T Use<T>(string path, bool write, Func<SafeFileHandle, T> use, T failed)
    {
        try
        {
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (!_open.TryGetValue((path, write), out var handle))
                {
                    handle = Open(path, write);
                    _open[(path, write)] = handle;
                }

                try
                {
                    return use(handle);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Gone with its cgroup, or refused: opened again at the next use.
                    _open.Remove((path, write));
                    handle.Dispose();
                    throw;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return failed;
        }
    }

    /// <summary>Opened as <see cref="CgroupFile"/> opens it for one use.</summary>
    private static SafeFileHandle Open(string path, bool write) => write ? CgroupFile.OpenWrite(path) : CgroupFile.OpenRead(path);
}
