using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Storage;

/// <summary>Local inputs' sha256 remembered by file status: trusted while nothing about the file changed, never for a file that just changed.</summary>
[Unit]
public sealed class LocalHashCacheTests : IDisposable
{
    private readonly TempFolder _temp = new();

    private (LocalHashCache Cache, FakeTimeProvider Time, string File) Setup(long size)
    {
        var path = _temp.Combine("big.fastq");
        File.WriteAllBytes(path, Bytes(size, 1));
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow + TimeSpan.FromSeconds(10));
        return (new LocalHashCache(_temp.Combine("hashes"), time), time, path);
    }

    [Fact]
    public async Task A_large_file_unchanged_since_it_was_hashed_is_not_read_again()
    {
        var (cache, _, path) = Setup(LocalHashCache.MinSize);

        Assert.Equal(Sha(path), await cache.Sha256Async(path, CancellationToken.None));

        // The entry is what is trusted: make it say something the bytes do not, and it is believed.
        var entry = Assert.Single(Directory.EnumerateFiles(cache.Folder, "*.txt", SearchOption.AllDirectories));
        var lines = File.ReadAllText(entry).Split('\n');
        File.WriteAllText(entry, lines[0] + "\n" + new string('a', 64));
        Assert.Equal(new string('a', 64), await cache.Sha256Async(path, CancellationToken.None));
    }

    [Fact]
    public async Task A_file_rewritten_with_the_same_size_is_hashed_again()
    {
        var (cache, time, path) = Setup(LocalHashCache.MinSize);
        var first = await cache.Sha256Async(path, CancellationToken.None);

        File.WriteAllBytes(path, Bytes(LocalHashCache.MinSize, 2));
        File.SetLastWriteTimeUtc(path, File.GetLastWriteTimeUtc(path).AddDays(-1)); // mtime set back: ctime still moves
        time.Advance(TimeSpan.FromSeconds(10));

        var second = await cache.Sha256Async(path, CancellationToken.None);
        Assert.NotEqual(first, second);
        Assert.Equal(Sha(path), second);
    }

    [Fact]
    public async Task A_file_that_changed_just_before_it_was_hashed_is_not_remembered()
    {
        var path = _temp.Combine("fresh.fastq");
        File.WriteAllBytes(path, Bytes(LocalHashCache.MinSize, 3));
        var cache = new LocalHashCache(_temp.Combine("hashes"), new FakeTimeProvider(DateTimeOffset.UtcNow));

        Assert.Equal(Sha(path), await cache.Sha256Async(path, CancellationToken.None));
        Assert.False(Directory.Exists(cache.Folder) && Directory.EnumerateFiles(cache.Folder, "*", SearchOption.AllDirectories).Any());
    }

    [Fact]
    public async Task A_small_file_is_hashed_every_time_and_leaves_no_entry()
    {
        var (cache, _, path) = Setup(LocalHashCache.MinSize - 1);

        Assert.Equal(Sha(path), await cache.Sha256Async(path, CancellationToken.None));
        Assert.False(Directory.Exists(cache.Folder));
    }

    private static byte[] Bytes(long size, byte seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static string Sha(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    public void Dispose() => _temp.Dispose();
}
