using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Pipelines.Storage;

/// <summary>
/// A local folder as an object store. Writes go to a temporary file and are renamed into place.
/// Downloads to the same file system are hard links (no bytes copied), then read once for hashes.
/// </summary>
public sealed partial class LocalObjectStore : IObjectStore
{
    private readonly string _root;

    public LocalObjectStore(string root)
    {
        _root = Path.GetFullPath(root);
    }

    public string Name => _root;

    public async IAsyncEnumerable<StoredObject> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!Directory.Exists(_root))
        {
            throw new PipelinesException($"local folder {_root} does not exist", retryHelps: false);
        }

        // A sorted walk, one folder at a time: keys come out in ordinal order while only one
        // folder's entries per level are held, so a million files do not have to fit in memory.
        foreach (var o in Walk(_root, "", prefix, cancellationToken))
        {
            yield return o;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    private static IEnumerable<StoredObject> Walk(string folder, string keyPrefix, string prefix, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var entries = new List<(string Name, bool IsFolder, long Size)>();
        foreach (var info in new DirectoryInfo(folder).EnumerateFileSystemInfos("*", new EnumerationOptions { AttributesToSkip = 0, IgnoreInaccessible = false }))
        {
            if (info is DirectoryInfo dir)
            {
                if (!dir.Attributes.HasFlag(FileAttributes.ReparsePoint))
                {
                    entries.Add((info.Name + "/", true, 0));
                }
            }
            else if (!IsTemporary(info.Name))
            {
                entries.Add((info.Name, false, ((FileInfo)info).Length));
            }
        }

        // A folder sorts as its name plus '/', which is where its keys fall in ordinal order.
        entries.Sort((x, y) => string.CompareOrdinal(x.Name, y.Name));
        foreach (var (name, isFolder, size) in entries)
        {
            var key = keyPrefix + name;
            if (isFolder)
            {
                // Only folders that can hold keys under the prefix are entered.
                if (key.StartsWith(prefix, StringComparison.Ordinal) || prefix.StartsWith(key, StringComparison.Ordinal))
                {
                    foreach (var o in Walk(Path.Combine(folder, name[..^1]), key, prefix, ct))
                    {
                        yield return o;
                    }
                }
            }
            else if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                yield return new StoredObject(key, size, null);
            }
        }
    }

    public Task<StoredObject?> StatAsync(string key, CancellationToken cancellationToken)
    {
        var info = new FileInfo(PathOf(key));
        return Task.FromResult(info.Exists ? new StoredObject(key, info.Length, null) : null);
    }

    public async Task<FileDigest> DownloadAsync(string key, string localPath, CancellationToken cancellationToken)
    {
        var source = PathOf(key);
        if (!File.Exists(source))
        {
            throw new ObjectNotFoundException(Name, key);
        }

        Directory.CreateDirectory(Path.GetDirectoryName(localPath)!);

        // A hard link shares the bytes: only files everyone may read are linked, since the
        // algorithm runs as another user; containers see them through a read-only mount.
        if ((File.GetUnixFileMode(source) & UnixFileMode.OtherRead) != 0 && Link(source, localPath) == 0)
        {
            return await Hashing.OfFileAsync(localPath, cancellationToken).ConfigureAwait(false);
        }

        await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true);
        await using var output = new FileStream(localPath, FileMode.Create, FileAccess.Write, FileShare.None, 81920, useAsync: true);
        return await Hashing.CopyAsync(input, output, cancellationToken).ConfigureAwait(false);
    }

    public Task<FileDigest> UploadAsync(string key, string localPath, CancellationToken cancellationToken) =>
        UploadAsync(key, localPath, "application/octet-stream", cancellationToken);

    // A folder keeps no content type.
    public async Task<FileDigest> UploadAsync(string key, string localPath, string contentType, CancellationToken cancellationToken)
    {
        var target = PathOf(key);
        var temp = TempPath(target);
        try
        {
            FileDigest digest;
            await using (var input = new FileStream(localPath, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true))
            await using (var output = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 81920, useAsync: true))
            {
                digest = await Hashing.CopyAsync(input, output, cancellationToken).ConfigureAwait(false);
            }

            File.Move(temp, target, overwrite: true);
            return digest;
        }
        finally
        {
            File.Delete(temp);
        }
    }

    public async Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
    {
        var target = PathOf(key);
        var temp = TempPath(target);
        try
        {
            await File.WriteAllBytesAsync(temp, content.ToArray(), cancellationToken).ConfigureAwait(false);
            File.Move(temp, target, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    public async Task<byte[]> ReadAllAsync(string key, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        if (!File.Exists(path))
        {
            throw new ObjectNotFoundException(Name, key);
        }

        return await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
    }

    public Task CopyAsync(string sourceKey, string destinationKey, CancellationToken cancellationToken) =>
        UploadAsync(destinationKey, PathOf(sourceKey), cancellationToken);

    [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existing, string created);

    private static bool IsTemporary(string key) => key.Contains(".pipelines-tmp-", StringComparison.Ordinal);

    private static string TempPath(string target)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        // Beside the target (a rename stays on one file system), with a short name of its own:
        // the target's name may already be near the 255-byte limit of a name.
        return Path.Combine(Path.GetDirectoryName(target)!, ".pipelines-tmp-" + Guid.NewGuid().ToString("N")[..12]);
    }

    private string PathOf(string key)
    {
        if (key.Split('/').Any(s => s is ".." or "."))
        {
            throw new PipelinesException($"key '{key}' has a '.' or '..' segment", retryHelps: false);
        }

        var full = Path.GetFullPath(Path.Combine(_root, key));
        if (!full.StartsWith(_root, StringComparison.Ordinal))
        {
            throw new PipelinesException($"key '{key}' leaves {_root}", retryHelps: false);
        }

        return full;
    }
}

/// <summary>An object that should exist does not (deleted, or never written).</summary>
public sealed class ObjectNotFoundException(string store, string key)
    : PipelinesException($"{store}: object '{key}' does not exist", retryHelps: false);
