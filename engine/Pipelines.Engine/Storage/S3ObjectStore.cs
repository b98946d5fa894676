using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Amazon.S3;
using Amazon.S3.Model;

namespace Pipelines.Storage;

/// <summary>
/// One bucket of an S3-compatible server. Uploads are never aws-chunked (OpenStack Swift refuses
/// chunked uploads and some emulators store them corrupted) and carry Content-MD5 so the server
/// checks what it received: a file below <paramref name="multipartThreshold"/> is one PUT, a
/// larger one a multipart upload of <paramref name="partSize"/> parts (one PUT stops at 5 GB).
/// </summary>
internal sealed class S3ObjectStore(IAmazonS3 client, string bucket, long multipartThreshold = S3ObjectStore.DefaultMultipartThreshold, long partSize = S3ObjectStore.DefaultPartSize) : IObjectStore
{
    /// <summary>Files from this size up are uploaded in parts.</summary>
    public const long DefaultMultipartThreshold = 256L * 1024 * 1024;

    /// <summary>The size of each part but the last (S3 wants at least 5 MiB, and at most 10,000 parts).</summary>
    public const long DefaultPartSize = 64L * 1024 * 1024;

    private const int MaxParts = 10_000;

    /// <summary>The bucket this store reads and writes.</summary>
    public string Bucket => bucket;

    public string Name => "s3://" + bucket;

    public IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken) =>
        ListAsync(prefix, startAfter: null, cancellationToken);

    /// <summary>
    /// Every object under a key prefix whose key sorts after <paramref name="startAfter"/> (S3's
    /// StartAfter; null lists from the start). The triggers' incremental listing uses it.
    /// </summary>
    public async IAsyncEnumerable<StoredObject> ListAsync(string prefix, string? startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
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
                    yield return new StoredObject(o.Key, o.Size ?? 0, o.ETag?.Trim('"'))
                    {
                        // The SDK v4 gives UTC; an unspecified kind is taken as UTC, not as this machine's zone.
                        LastModified = o.LastModified is { } at ? new DateTimeOffset(at.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(at, DateTimeKind.Utc) : at.ToUniversalTime()) : null,
                    };
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
        // An ETag that is an MD5 is checked against the md5 of the bytes; any other names the
        // version served, which the caller compares with the one it planned (ContentTags).
        var etag = response.ETag?.Trim('"');
        var md5 = etag is null || ContentTags.IsMd5ETag(etag, response.ServerSideEncryptionMethod?.Value, response.ServerSideEncryptionCustomerMethod?.Value);
        FileDigest digest;
        try
        {
            digest = await Hashing.CopyAsync(response.ResponseStream, output, cancellationToken, md5).ConfigureAwait(false);
        }
        catch (Amazon.Runtime.AmazonClientException e)
        {
            // The SDK checks the bytes against an ETag that is an MD5 as they stream, where S3's
            // headers do not say the object is encrypted: they were damaged on the way.
            throw new PipelinesException($"{Name}/{key}: the bytes received do not match the object's ETag (the MD5 of its content): {e.Message}", retryHelps: true, e);
        }

        if (response.ContentLength >= 0 && digest.Size != response.ContentLength)
        {
            throw new PipelinesException($"{Name}/{key}: received {digest.Size} bytes, expected {response.ContentLength}", retryHelps: true);
        }

        return md5 ? digest : digest with { VersionTag = etag };
    }

    public Task<FileDigest> UploadAsync(string key, string localPath, CancellationToken cancellationToken) =>
        UploadAsync(key, localPath, "application/octet-stream", cancellationToken);

    public async Task<FileDigest> UploadAsync(string key, string localPath, string contentType, CancellationToken cancellationToken)
    {
        CheckKeyLength(key);
        long size;

        // The size of what opening the path gives, not of a link: workers upload through /proc/self/fd/N.
        using (var handle = File.OpenHandle(localPath))
        {
            size = RandomAccess.GetLength(handle);
        }

        if (size >= multipartThreshold)
        {
            return await UploadInPartsAsync(key, localPath, size, contentType, cancellationToken).ConfigureAwait(false);
        }

        var digest = await Hashing.OfFileAsync(localPath, cancellationToken).ConfigureAwait(false);
        var request = new PutObjectRequest
        {
            BucketName = bucket,
            Key = key,
            FilePath = localPath,
            UseChunkEncoding = false,
            MD5Digest = Convert.ToBase64String(Convert.FromHexString(digest.Md5!)),
            ContentType = contentType,
        };
        await Call(() => client.PutObjectAsync(request, cancellationToken), key).ConfigureAwait(false);
        return digest;
    }

    private async Task<FileDigest> UploadInPartsAsync(string key, string localPath, long size, string contentType, CancellationToken ct)
    {
        // Parts grow past partSize only for files beyond 10,000 parts (640 GB at 64 MiB).
        var part = Math.Max(partSize, (size + MaxParts - 1) / MaxParts);
        var (digest, partMd5s) = await HashPartsAsync(localPath, part, ct).ConfigureAwait(false);
        var upload = await Call(() => client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = bucket, Key = key, ContentType = contentType }, ct), key).ConfigureAwait(false);
        try
        {
            var etags = new List<PartETag>(partMd5s.Count);
            for (var i = 0; i < partMd5s.Count; i++)
            {
                var request = new UploadPartRequest
                {
                    BucketName = bucket,
                    Key = key,
                    UploadId = upload.UploadId,
                    PartNumber = i + 1,
                    FilePath = localPath,
                    FilePosition = i * part,
                    PartSize = Math.Min(part, size - (i * part)),
                    UseChunkEncoding = false,
                    MD5Digest = Convert.ToBase64String(partMd5s[i]),
                };
                var response = await Call(() => client.UploadPartAsync(request, ct), key).ConfigureAwait(false);
                etags.Add(new PartETag(i + 1, response.ETag));
            }

            await Call(() => client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest { BucketName = bucket, Key = key, UploadId = upload.UploadId, PartETags = etags }, ct), key).ConfigureAwait(false);
            return digest;
        }
        catch (Exception e)
        {
            // Parts of an upload that is neither completed nor aborted are kept (and billed) by the server.
            if (await TryAbortAsync(key, upload.UploadId).ConfigureAwait(false) is { } abortError)
            {
                throw new PipelinesException($"{Name}/{key}: a multipart upload failed ({e.Message}), and aborting it failed too ({abortError.Message}): its parts stay until the bucket's lifecycle rule (AbortIncompleteMultipartUpload) removes them", retryHelps: e is not PipelinesException p || p.RetryHelps, e);
            }

            throw;
        }
    }

    /// <summary>Aborts a multipart upload; returns the error when that fails too.</summary>
    private async Task<Exception?> TryAbortAsync(string key, string uploadId)
    {
        try
        {
            // Not the caller's token: a cancelled upload is still aborted.
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await client.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = bucket, Key = key, UploadId = uploadId }, timeout.Token).ConfigureAwait(false);
            return null;
        }
        catch (Exception e) when (e is Amazon.Runtime.AmazonServiceException or Amazon.Runtime.AmazonClientException or HttpRequestException or OperationCanceledException)
        {
            return e;
        }
    }

    /// <summary>One read of the file: the whole file's size, sha256 and md5, and each part's md5 (for its Content-MD5).</summary>
    private static async Task<(FileDigest Digest, List<byte[]> PartMd5s)> HashPartsAsync(string path, long part, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        using var partMd5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        var parts = new List<byte[]>();
        var buffer = new byte[1024 * 1024];
        long total = 0;
        long inPart = 0;
        await using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
        int read;
        while ((read = await f.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, part - inPart)), ct).ConfigureAwait(false)) > 0)
        {
            sha.AppendData(buffer, 0, read);
            md5.AppendData(buffer, 0, read);
            partMd5.AppendData(buffer, 0, read);
            total += read;
            inPart += read;
            if (inPart == part)
            {
                parts.Add(partMd5.GetHashAndReset());
                inPart = 0;
            }
        }

        if (inPart > 0)
        {
            parts.Add(partMd5.GetHashAndReset());
        }

        return (new FileDigest(total, Convert.ToHexStringLower(sha.GetHashAndReset()), Convert.ToHexStringLower(md5.GetHashAndReset())), parts);
    }

    public async Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
    {
        CheckKeyLength(key);
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

    public async Task DeleteAsync(string key, CancellationToken cancellationToken) =>
        await Call(() => client.DeleteObjectAsync(bucket, key, cancellationToken), key).ConfigureAwait(false);

    public async Task<byte[]> ReadAllAsync(string key, CancellationToken cancellationToken)
    {
        using var response = await Call(() => client.GetObjectAsync(bucket, key, cancellationToken), key).ConfigureAwait(false);
        using var memory = new MemoryStream();
        await response.ResponseStream.CopyToAsync(memory, cancellationToken).ConfigureAwait(false);
        return memory.ToArray();
    }

    public async Task CopyAsync(string sourceKey, string destinationKey, CancellationToken cancellationToken)
    {
        // Through a local file rather than CopyObject: the SDK escapes '/' in x-amz-copy-source
        // as %2F, which some S3-compatible servers (Swift) do not decode. The file keeps memory
        // flat, gives the upload its Content-MD5, and lets a large object go up in parts.
        var temp = Path.Combine(Path.GetTempPath(), "pipelines-copy-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            await DownloadAsync(sourceKey, temp, cancellationToken).ConfigureAwait(false);
            await UploadAsync(destinationKey, temp, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>S3 refuses a key over 1024 UTF-8 bytes with a bare 400; say so before sending it.</summary>
    private void CheckKeyLength(string key)
    {
        var bytes = System.Text.Encoding.UTF8.GetByteCount(key);
        if (bytes > KeyNames.MaxKeyBytes)
        {
            throw new PipelinesException($"{Name}/{key[..Math.Min(key.Length, 80)]}...: the key is {bytes} bytes long in UTF-8; S3 allows at most {KeyNames.MaxKeyBytes}", retryHelps: false);
        }
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
        var translated = TranslateError(e, key);
        if (translated is not ObjectNotFoundException)
        {
            // A missing key is an answer (the cache looks up many), not an error of the store.
            Telemetry.EngineMetrics.StorageFailed(translated.RetryHelps);
        }

        return translated;
    }

    private PipelinesException TranslateError(Exception e, string key)
    {
        if (e is AmazonS3Exception s3)
        {
            return s3.ErrorCode switch
            {
                "NoSuchBucket" => new PipelinesException($"{Name}: the bucket does not exist", retryHelps: false, e),
                "NoSuchKey" => new ObjectNotFoundException(Name, key),
                "InvalidAccessKeyId" or "SignatureDoesNotMatch" or "AccessDenied" =>
                    new PipelinesException($"{Name}: access denied ({s3.ErrorCode}): check the S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)", retryHelps: false, e),
                "InvalidToken" or "ExpiredToken" or "TokenRefreshRequired" =>
                    new PipelinesException($"{Name}: access denied ({s3.ErrorCode}): the session token of temporary credentials was refused; check AWS_SESSION_TOKEN, or renew the credentials", retryHelps: false, e),
                _ when s3.StatusCode == HttpStatusCode.NotFound => new ObjectNotFoundException(Name, key),
                _ when s3.StatusCode == HttpStatusCode.Forbidden =>
                    new PipelinesException($"{Name}: access denied: check the S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)", retryHelps: false, e),
                _ => new PipelinesException($"{Name}/{key}: S3 error {(int)s3.StatusCode} {s3.ErrorCode}: {s3.Message}", retryHelps: (int)s3.StatusCode >= 500, e),
            };
        }

        if (S3Settings.IsMissingCredentials(e))
        {
            return S3Settings.MissingCredentials(Name, e);
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
