using System.Security.Cryptography;
using System.Text;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Storage;

/// <summary>The S3 store against the real OpenStack Swift (s3api) that scripts/test starts.</summary>
public sealed class S3ObjectStoreTests : IDisposable
{
    private readonly ObjectStoreFactory _factory = new(TestEnvironment.S3);
    private readonly TempFolder _temp = new();

    [Fact]
    public async Task Upload_then_download_returns_the_same_bytes_and_hashes()
    {
        var bucket = await TestEnvironment.NewBucketAsync(_factory.S3Client);
        var location = _factory.Open($"s3://{bucket}/data/");
        var bytes = RandomNumberGenerator.GetBytes(300_000);
        var local = _temp.Combine("in.bin");
        await File.WriteAllBytesAsync(local, bytes);

        var up = await location.Store.UploadAsync(location.Key("a/b.bin"), local, CancellationToken.None);
        var down = await location.Store.DownloadAsync(location.Key("a/b.bin"), _temp.Combine("out.bin"), CancellationToken.None);

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), up.Sha256);
        Assert.Equal(up, down);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(_temp.Combine("out.bin")));
        var stat = await location.Store.StatAsync(location.Key("a/b.bin"), CancellationToken.None);
        Assert.NotNull(stat);
        Assert.Equal(300_000, stat.Size);
        Assert.Equal(Convert.ToHexStringLower(MD5.HashData(bytes)), stat.ETag);
    }

    [Fact]
    public async Task List_pages_through_more_than_one_thousand_objects_in_key_order()
    {
        var bucket = await TestEnvironment.NewBucketAsync(_factory.S3Client);
        var location = _factory.Open($"s3://{bucket}/many/");
        var keys = Enumerable.Range(0, 1050).Select(i => $"many/f{i:D5}.txt").ToList();
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (k, ct) =>
            await location.Store.PutAsync(k, Encoding.UTF8.GetBytes(k), "text/plain", ct));
        await location.Store.PutAsync("other/x.txt", "x"u8.ToArray(), "text/plain", CancellationToken.None);

        var listed = new List<StoredObject>();
        await foreach (var o in location.Store.ListAsync(location.Prefix, CancellationToken.None))
        {
            listed.Add(o);
        }

        Assert.Equal(keys, listed.Select(o => o.Key));
        Assert.All(listed, o => Assert.Equal(o.Key.Length, o.Size));
        Assert.All(listed, o => Assert.Equal(Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(o.Key))), o.ETag));
    }

    [Fact]
    public async Task A_missing_object_is_null_on_stat_and_a_clear_error_on_read()
    {
        var bucket = await TestEnvironment.NewBucketAsync(_factory.S3Client);
        var location = _factory.Open($"s3://{bucket}/");

        Assert.Null(await location.Store.StatAsync("nope.txt", CancellationToken.None));
        var e = await Assert.ThrowsAsync<ObjectNotFoundException>(() => location.Store.ReadAllAsync("nope.txt", CancellationToken.None));
        Assert.Contains("nope.txt", e.Message, StringComparison.Ordinal);
        Assert.False(e.RetryHelps);
    }

    [Fact]
    public async Task A_missing_bucket_is_named_in_the_error()
    {
        var location = _factory.Open("s3://no-such-bucket-" + Guid.NewGuid().ToString("N")[..8] + "/");
        var e = await Assert.ThrowsAsync<PipelinesException>(async () =>
        {
            await foreach (var o in location.Store.ListAsync("", CancellationToken.None))
            {
                Assert.Fail("listed " + o.Key);
            }
        });
        Assert.Contains("bucket does not exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_secret_is_reported_as_access_denied_without_retry()
    {
        var bucket = await TestEnvironment.NewBucketAsync(_factory.S3Client);
        using var wrong = new ObjectStoreFactory(TestEnvironment.S3 with { SecretKey = "not-the-secret" });
        var location = wrong.Open($"s3://{bucket}/");
        var e = await Assert.ThrowsAsync<PipelinesException>(() => location.Store.PutAsync("x", "x"u8.ToArray(), "text/plain", CancellationToken.None));
        Assert.Contains("access denied", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-secret", e.Message, StringComparison.Ordinal);
        Assert.False(e.RetryHelps);
    }

    [Fact]
    public async Task An_unreachable_endpoint_is_reported_as_such_and_retry_may_help()
    {
        using var nowhere = new ObjectStoreFactory(TestEnvironment.S3 with { Endpoint = "http://127.0.0.1:9" });
        var location = nowhere.Open("s3://bucket/");
        var e = await Assert.ThrowsAsync<PipelinesException>(() => location.Store.StatAsync("x", CancellationToken.None));
        Assert.Contains("cannot reach the S3 endpoint http://127.0.0.1:9", e.Message, StringComparison.Ordinal);
        Assert.True(e.RetryHelps);
    }

    public void Dispose()
    {
        _factory.Dispose();
        _temp.Dispose();
    }
}
