using System.Security.Cryptography;
using System.Text;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Storage;

/// <summary>The S3 store against the real OpenStack Swift (s3api) that scripts/test starts.</summary>
[Integration]
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
    public async Task A_file_above_the_multipart_threshold_goes_up_in_parts_and_reads_back_byte_for_byte()
    {
        var bucket = await TestEnvironment.NewBucketAsync(_factory.S3Client);
        var store = new S3ObjectStore(_factory.S3Client, bucket, multipartThreshold: 8 * 1024 * 1024, partSize: 5 * 1024 * 1024);
        var bytes = RandomNumberGenerator.GetBytes((20 * 1024 * 1024) + 12_345);
        var local = _temp.Combine("big.bin");
        await File.WriteAllBytesAsync(local, bytes);

        var up = await store.UploadAsync("big/table.parquet", local, "application/vnd.apache.parquet", CancellationToken.None);
        var down = await store.DownloadAsync("big/table.parquet", _temp.Combine("big-back.bin"), CancellationToken.None);

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), up.Sha256);
        Assert.Equal(Convert.ToHexStringLower(MD5.HashData(bytes)), up.Md5);
        Assert.Equal(bytes.Length, up.Size);
        Assert.Equal((up.Size, up.Sha256), (down.Size, down.Sha256));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(_temp.Combine("big-back.bin")));

        // A multipart object's ETag is the md5 of the parts' md5s and their count: five parts here.
        // It is no hash of the bytes, so a download names the version it read instead (ContentTags).
        var stat = await store.StatAsync("big/table.parquet", CancellationToken.None);
        Assert.NotNull(stat);
        Assert.EndsWith("-5", stat.ETag, StringComparison.Ordinal);
        var listed = await store.ListAsync("big/", CancellationToken.None).SingleAsync();
        Assert.Equal(stat.ETag, listed.ETag);
        Assert.Equal(listed.ETag, down.VersionTag);
        Assert.Null(down.Md5);
        Assert.True(ContentTags.Matches(listed.ETag!, listed.Size, down));
        var uploads = await _factory.S3Client.ListMultipartUploadsAsync(bucket);
        Assert.Empty(uploads.MultipartUploads ?? []);
    }

    [Fact]
    public async Task Copy_streams_an_object_of_several_parts_to_another_key()
    {
        var bucket = await TestEnvironment.NewBucketAsync(_factory.S3Client);
        var store = new S3ObjectStore(_factory.S3Client, bucket, multipartThreshold: 6 * 1024 * 1024, partSize: 5 * 1024 * 1024);
        var bytes = RandomNumberGenerator.GetBytes(11 * 1024 * 1024);
        var local = _temp.Combine("copy.bin");
        await File.WriteAllBytesAsync(local, bytes);
        await store.UploadAsync("runs/a/tasks/x/out.bin", local, CancellationToken.None);

        await store.CopyAsync("runs/a/tasks/x/out.bin", "runs/b/tasks/x/out.bin", CancellationToken.None);

        var copied = await store.DownloadAsync("runs/b/tasks/x/out.bin", _temp.Combine("copied.bin"), CancellationToken.None);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), copied.Sha256);
        Assert.Equal(bytes.Length, copied.Size);
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

    [Fact]
    public async Task Put_of_a_key_over_1024_bytes_is_refused_before_it_is_sent()
    {
        var bucket = await TestEnvironment.NewBucketAsync(_factory.S3Client);
        var location = _factory.Open($"s3://{bucket}/");

        var e = await Assert.ThrowsAsync<PipelinesException>(() => location.Store.PutAsync(new string('k', 1025), "x"u8.ToArray(), "text/plain", CancellationToken.None));

        Assert.EndsWith("...: the key is 1025 bytes long in UTF-8; S3 allows at most 1024", e.Message, StringComparison.Ordinal);
        Assert.False(e.RetryHelps);
    }

    public void Dispose()
    {
        _factory.Dispose();
        _temp.Dispose();
    }
}
