using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Win32.SafeHandles;

namespace Pipelines.Storage;

/// <summary>
/// What the embedded stores keep out of memory (the run store's provenance rows, the ledger's
/// records): each record appended as JSON to one file, read back by where it is. The file is
/// made on the first append and unlinked as soon as it is opened: it lives as long as the
/// process (or <see cref="Dispose"/>), and a killed engine leaves none. Written records never
/// change, so reads are positional and may run beside the appends.
/// </summary>
internal sealed class SpillFile(string? directory, string what) : IDisposable
{
    private readonly Lock _lock = new();
    private SafeFileHandle? _file;
    private long _length;
    private bool _disposed;

    /// <summary>Appends one record and returns where it starts; a write that fails (a full disk, a disposed store) throws.</summary>
    public long Append(byte[] json)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_file is null)
            {
                var path = Path.Combine(directory ?? Path.GetTempPath(), $"pipelines-{what}-{Environment.ProcessId}-{Guid.NewGuid():N}");
                _file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
                File.Delete(path);
            }

            var at = _length;
            RandomAccess.Write(_file, json, at);
            _length += json.Length;
            return at;
        }
    }

    /// <summary>The records at <paramref name="at"/> (offset and length each), read one by one as they are taken, with the metadata of their type made at build time.</summary>
    public IEnumerable<T> Read<T>(IEnumerable<(long Offset, int Length)> at, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        SafeFileHandle? file;
        lock (_lock)
        {
            file = _file;
        }

        // Made at the first record: a claim asks for a task's records not keyed by delivery, and
        // there are none in a run the engine wrote, so most reads are of nothing (4 KiB a task).
        byte[]? buffer = null;
        foreach (var (offset, length) in at)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (buffer is null || buffer.Length < length)
            {
                buffer = new byte[Math.Max(length, Math.Max(4096, (buffer?.Length ?? 0) * 2))];
            }

            for (var read = 0; read < length;)
            {
                var n = RandomAccess.Read(file!, buffer.AsSpan(read, length - read), offset + read);
                read += n > 0 ? n : throw new IOException($"the {what} spill file ended at {offset + read} bytes, before a record of {length} bytes at {offset}");
            }

            yield return JsonSerializer.Deserialize(buffer.AsSpan(0, length), type) ?? throw new InvalidDataException($"a {what} record at {offset} of the spill file read back as null");
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _file?.Dispose();
        }
    }
}
