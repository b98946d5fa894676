using System.Net;
using System.Runtime.CompilerServices;
using Amazon.S3;
using Amazon.S3.Model;

namespace Pipelines.Storage;

/// <summary>
/// One bucket of an S3-compatible server. Uploads are sent whole, never aws-chunked (OpenStack
/// Swift refuses chunked uploads and some emulators store them corrupted), with Content-MD5 so
/// the server checks what it received.
/// </summary>
public sealed class S3ObjectStore(IAmazonS3 client, string bucket) : IObjectStore
{
    /// <summary>The bucket this store reads and writes.</summary>
    public string Bucket => bucket;

    public string Name => "s3://" + bucket;

    public IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken) =>
        ListAfterAsync(prefix, null, cancellationToken);

    /// <summary>
    /// Every object under a key prefix whose key sorts after <paramref name="startAfter"/> (S3's
    /// StartAfter; null lists from the start). The triggers' incremental listing uses it.
    /// </summary>
    public async IAsyncEnumerable<StoredObject> ListAfterAsync(string prefix, string? startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string? token = null;
        do
        {
            var request = new ListObjectsV2Request { BucketName = bucket, Prefix = prefix, ContinuationToken = token, MaxKeys = 1000 };
            if (token is null && startAfter is not null)
            {
                request.StartAfter = startAfter;
            }

            var response = await Call(() => client.ListObjectsV2Async(request, cancellationToken), prefix).ConfigureAwait(false);
            foreach (var o in response.S3Objects ?? [])
            {
                if (!o.Key.EndsWith('/'))
                {
                    yield return new StoredObject(o.Key, o.Size ?? 0, o.ETag?.Trim('"'));
                }
            }

            token = response.IsTruncated == true ? response.NextContinuationToken : null;
        }
        while (token is not null);
    }

    public async Task<StoredObject?> StatAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            var m = await client.GetObjectMetadataAsync(bucket, key, cancellationToken).ConfigureAwait(false);
            return new StoredObject(key, m.ContentLength, m.ETag?.Trim('"'));
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (Exception e) when (e is Amazon.Runtime.AmazonServiceException or Amazon.Runtime.AmazonClientException or HttpRequestException)
        {
            throw Translate(e, key);
        }
    }

    public async Task<FileDigest> DownloadAsync(string key, string localPath, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(localPath)!);
        using var response = await Call(() => client.GetObjectAsync(bucket, key, cancellationToken), key).ConfigureAwait(false);
        await using var output = new FileStream(localPath, FileMode.Create, FileAccess.Write, FileShare.None, 81920, useAsync: true);
        var digest = await Hashing.CopyAsync(response.ResponseStream, output, cancellationToken).ConfigureAwait(false);
        if (response.ContentLength >= 0 && digest.Size != response.ContentLength)
        {
            throw new PipelinesException($"{Name}/{key}: received {digest.Size} bytes, expected {response.ContentLength}", retryHelps: true);
        }

        return digest;
    }

    public async Task<FileDigest> UploadAsync(string key, string localPath, CancellationToken cancellationToken)
    {
        var digest = await Hashing.OfFileAsync(localPath, cancellationToken).ConfigureAwait(false);
        var request = new PutObjectRequest
        {
            BucketName = bucket,
            Key = key,
            FilePath = localPath,
            UseChunkEncoding = false,
            MD5Digest = Convert.ToBase64String(Convert.FromHexString(digest.Md5)),
            ContentType = "application/octet-stream",
        };
        await Call(() => client.PutObjectAsync(request, cancellationToken), key).ConfigureAwait(false);
        return digest;
    }

    public async Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
    {
        var bytes = content.ToArray();
        using var stream = new MemoryStream(bytes, writable: false);
        var request = new PutObjectRequest
        {
            BucketName = bucket,
            Key = key,
            InputStream = stream,
            UseChunkEncoding = false,
            MD5Digest = Convert.ToBase64String(System.Security.Cryptography.MD5.HashData(bytes)),
            ContentType = contentType,
        };
        await Call(() => client.PutObjectAsync(request, cancellationToken), key).ConfigureAwait(false);
    }

    public async Task<byte[]> ReadAllAsync(string key, CancellationToken cancellationToken)
    {
        using var response = await Call(() => client.GetObjectAsync(bucket, key, cancellationToken), key).ConfigureAwait(false);
        using var memory = new MemoryStream();
        await response.ResponseStream.CopyToAsync(memory, cancellationToken).ConfigureAwait(false);
        return memory.ToArray();
    }

    public async Task CopyAsync(string sourceKey, string destinationKey, CancellationToken cancellationToken)
    {
        // A read and a write rather than CopyObject: the SDK escapes '/' in x-amz-copy-source as
        // %2F, which some S3-compatible servers do not decode. Objects copied here are small.
        var bytes = await ReadAllAsync(sourceKey, cancellationToken).ConfigureAwait(false);
        await PutAsync(destinationKey, bytes, "application/octet-stream", cancellationToken).ConfigureAwait(false);
    }

    private async Task<T> Call<T>(Func<Task<T>> call, string key)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (Exception e) when (e is Amazon.Runtime.AmazonServiceException or Amazon.Runtime.AmazonClientException or HttpRequestException)
        {
            throw Translate(e, key);
        }
    }

    private PipelinesException Translate(Exception e, string key)
    {
        if (e is AmazonS3Exception s3)
        {
            return s3.ErrorCode switch
            {
                "NoSuchBucket" => new PipelinesException($"{Name}: the bucket does not exist", retryHelps: false, e),
                "NoSuchKey" => new ObjectNotFoundException(Name, key),
                "InvalidAccessKeyId" or "SignatureDoesNotMatch" or "AccessDenied" or "InvalidToken" or "ExpiredToken" =>
                    new PipelinesException($"{Name}: access denied ({s3.ErrorCode}): check the S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)", retryHelps: false, e),
                _ when s3.StatusCode == HttpStatusCode.NotFound => new ObjectNotFoundException(Name, key),
                _ when s3.StatusCode == HttpStatusCode.Forbidden =>
                    new PipelinesException($"{Name}: access denied: check the S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)", retryHelps: false, e),
                _ => new PipelinesException($"{Name}/{key}: S3 error {(int)s3.StatusCode} {s3.ErrorCode}: {s3.Message}", retryHelps: (int)s3.StatusCode >= 500, e),
            };
        }

        var endpoint = client.Config.ServiceURL ?? "(default endpoint)";
        return new PipelinesException($"{Name}: cannot reach the S3 endpoint {endpoint}: {Innermost(e).Message}", retryHelps: true, e);
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null)
        {
            e = e.InnerException;
        }

        return e;
    }
}
