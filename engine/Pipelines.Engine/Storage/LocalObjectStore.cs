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
        // The prefix may end inside a name; list the folder that holds it and filter.
        var slash = prefix.LastIndexOf('/');
        var folder = slash < 0 ? _root : PathOf(prefix[..slash]);
        if (!Directory.Exists(folder))
        {
            if (!Directory.Exists(_root))
            {
                throw new PipelinesException($"local folder {_root} does not exist", retryHelps: false);
            }

            yield break;
        }

        var keys = new List<(string Key, long Size)>();
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = false, AttributesToSkip = 0 };
        foreach (var file in new DirectoryInfo(folder).EnumerateFiles("*", options))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var key = Path.GetRelativePath(_root, file.FullName).Replace(Path.DirectorySeparatorChar, '/');
            if (key.StartsWith(prefix, StringComparison.Ordinal) && !IsTemporary(key))
            {
                keys.Add((key, file.Length));
            }
        }

        keys.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        foreach (var (key, size) in keys)
        {
            yield return new StoredObject(key, size, null);
        }

        await Task.CompletedTask.ConfigureAwait(false);
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

    public async Task<FileDigest> UploadAsync(string key, string localPath, CancellationToken cancellationToken)
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
        return target + ".pipelines-tmp-" + Guid.NewGuid().ToString("N")[..12];
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
