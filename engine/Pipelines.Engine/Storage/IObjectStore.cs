namespace Pipelines.Storage;

/// <summary>
/// One bucket or one local folder. Keys are '/'-separated and relative to the store's root.
/// Writes are whole-object: a reader sees the old object or the new one, never a part.
/// </summary>
public interface IObjectStore
{
    /// <summary>How to name the store in messages, e.g. s3://bucket or /data/reads.</summary>
    string Name { get; }

    /// <summary>Every object under a key prefix, in ordinal key order.</summary>
    IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>
    /// Every object under a key prefix whose key sorts after <paramref name="startAfter"/> (S3's
    /// StartAfter; null lists from the start), in ordinal key order. The triggers' incremental listing uses it.
    /// </summary>
    IAsyncEnumerable<StoredObject> ListAsync(string prefix, string? startAfter, CancellationToken cancellationToken);

    /// <summary>
    /// The content tag a task id and the stage-in check use for a listed object: the store's
    /// version tag where it has one (an S3 ETag), else the sha256 of the bytes (local files).
    /// </summary>
    Task<string> ContentTagAsync(StoredObject o, CancellationToken cancellationToken) => Task.FromResult(o.ETag ?? "");

    /// <summary>Whether the store answers (the bucket can be listed, the folder read); throws what is wrong, for readiness checks.</summary>
    async Task PingAsync(CancellationToken cancellationToken)
    {
        await foreach (var _ in ListAsync("", cancellationToken).ConfigureAwait(false))
        {
            break;
        }
    }

    /// <summary>Why this store's root cannot hold objects (a file or a device where a folder should be), or null.</summary>
    string? RootBlocker() => null;

    /// <summary>
    /// Says that the next writes go under these key prefixes (each ending in '/', parents first),
    /// which are most likely new: a local folder makes them now, rather than have a write find each
    /// missing first (a failed open or link, then the mkdir). A store without folders does nothing.
    /// </summary>
    void NewFolders(IReadOnlyList<string> prefixes)
    {
    }

    /// <summary>The object's size and version tag, or null when it does not exist.</summary>
    Task<StoredObject?> StatAsync(string key, CancellationToken cancellationToken);

    /// <summary>Copies an object to a local file and returns what was stored: size, sha256 and md5.</summary>
    Task<FileDigest> DownloadAsync(string key, string localPath, CancellationToken cancellationToken);

    /// <summary>Stores a local file under a key and returns the size and hashes of the bytes stored.</summary>
    Task<FileDigest> UploadAsync(string key, string localPath, CancellationToken cancellationToken) =>
        UploadAsync(key, localPath, "application/octet-stream", cancellationToken);

    /// <summary>Stores a local file under a key, streamed from the file, with a content type.</summary>
    Task<FileDigest> UploadAsync(string key, string localPath, string contentType, CancellationToken cancellationToken);

    /// <summary>
    /// Stores a file its caller gives up, opened as <paramref name="file"/>: nothing writes it any
    /// more (the processes that made it are gone) and the caller only removes its own name for it
    /// afterwards. A local folder may take the file itself rather than a copy (LocalObjectStore);
    /// any other store uploads it as <see cref="UploadAsync(string, string, CancellationToken)"/>
    /// would, read through the descriptor.
    /// </summary>
    Task<FileDigest> AdoptAsync(string key, Microsoft.Win32.SafeHandles.SafeFileHandle file, CancellationToken cancellationToken) =>
        UploadAsync(key, $"/proc/self/fd/{file.DangerousGetHandle()}", cancellationToken);

    /// <summary>Stores bytes under a key.</summary>
    Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken);

    /// <summary>Reads a whole object into memory (small objects: tables, manifests).</summary>
    Task<byte[]> ReadAllAsync(string key, CancellationToken cancellationToken);

    /// <summary>
    /// Reads a whole object into memory, or null when there is none: for a look where absence is
    /// the common answer (a task's cache entry), so that it costs no exception. A store that can
    /// tell absence without one overrides it (LocalObjectStore); anything else (a refusal, an
    /// outage) throws as <see cref="ReadAllAsync"/> does.
    /// </summary>
    async Task<byte[]?> TryReadAllAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            return await ReadAllAsync(key, cancellationToken).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Copies an object inside the store, streamed (objects of any size).</summary>
    Task CopyAsync(string sourceKey, string destinationKey, CancellationToken cancellationToken);

    /// <summary>Removes an object; one that is not there is no error. Only stores that can delete implement it (algorithm images are removed with it).</summary>
    Task DeleteAsync(string key, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{Name} cannot delete objects");
}

/// <summary>An entry of a listing. <see cref="ETag"/> is the store's version tag (quotes removed), null for local files.</summary>
public sealed record StoredObject(string Key, long Size, string? ETag)
{
    /// <summary>When the object was written, as the listing says (S3's LastModified); null where the store does not say.</summary>
    public DateTimeOffset? LastModified { get; init; }
}

/// <summary>What was read or written: its size and sha256, and its md5 where it was computed (null for local files' bytes, whose tag is a sha256).</summary>
public sealed record FileDigest(long Size, string Sha256, string? Md5)
{
    /// <summary>
    /// The store's version tag of the object read, where that tag is not a hash of its bytes (an
    /// S3 ETag of a multipart upload or of an SSE-KMS or SSE-C object); null where it is one.
    /// </summary>
    public string? VersionTag { get; init; }
}
