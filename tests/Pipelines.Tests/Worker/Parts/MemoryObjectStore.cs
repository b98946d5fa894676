using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Pipelines.Storage;

namespace Pipelines.Tests.Worker.Parts;

/// <summary>
/// An object store in memory, for the worker's unit tests: served by ObjectStoreFactory under
/// mem://, so that a rule of the worker can be tested without a store server. Its ETags are
/// plain MD5s, as Swift's and S3's simple-PUT ETags are.
/// </summary>
internal sealed class MemoryObjectStore : IObjectStore
{
    private readonly ConcurrentDictionary<string, byte[]> _objects = new(StringComparer.Ordinal);

    public string Name => "mem://";

    public IReadOnlyCollection<string> Keys => _objects.Keys.Order(StringComparer.Ordinal).ToList();

    public void Set(string key, byte[] content) => _objects[key] = content;

    public byte[] Get(string key) => _objects.TryGetValue(key, out var v) ? v : throw new ObjectNotFoundException(Name, key);

    public bool Contains(string key) => _objects.ContainsKey(key);

    public void Remove(string key) => _objects.TryRemove(key, out _);

    public IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken) => ListAsync(prefix, null, cancellationToken);

    public async IAsyncEnumerable<StoredObject> ListAsync(string prefix, string? startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        foreach (var key in Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && (startAfter is null || string.CompareOrdinal(k, startAfter) > 0)))
        {
            yield return new StoredObject(key, _objects[key].Length, Md5(_objects[key]));
        }
    }

    public Task<StoredObject?> StatAsync(string key, CancellationToken cancellationToken) =>
        Task.FromResult(_objects.TryGetValue(key, out var v) ? new StoredObject(key, v.Length, Md5(v)) : null);

    public async Task<FileDigest> DownloadAsync(string key, string localPath, CancellationToken cancellationToken)
    {
        var content = Get(key);
        Directory.CreateDirectory(Path.GetDirectoryName(localPath)!);
        await File.WriteAllBytesAsync(localPath, content, cancellationToken);
        return Digest(content);
    }

    public async Task<FileDigest> UploadAsync(string key, string localPath, string contentType, CancellationToken cancellationToken)
    {
        var content = await File.ReadAllBytesAsync(localPath, cancellationToken);
        _objects[key] = content;
        return Digest(content);
    }

    /// <summary>Called as a put begins, before the token is looked at: a test's hook into the middle of a write.</summary>
    public Func<string, CancellationToken, Task>? BeforePut { get; set; }

    public async Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
    {
        if (BeforePut is { } hook)
        {
            await hook(key, cancellationToken);
        }

        // As a real store's client does: a cancelled write does not happen.
        cancellationToken.ThrowIfCancellationRequested();
        _objects[key] = content.ToArray();
    }

    public Task<byte[]> ReadAllAsync(string key, CancellationToken cancellationToken) => Task.FromResult(Get(key));

    public Task CopyAsync(string sourceKey, string destinationKey, CancellationToken cancellationToken)
    {
        _objects[destinationKey] = Get(sourceKey);
        return Task.CompletedTask;
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _objects.TryRemove(key, out _);
        return Task.CompletedTask;
    }

    private static string Md5(byte[] content) => Convert.ToHexStringLower(MD5.HashData(content));

    private static FileDigest Digest(byte[] content) => new(content.Length, Convert.ToHexStringLower(SHA256.HashData(content)), Md5(content));
}
