namespace Pipelines.Storage;

/// <summary>
/// What a content tag (<see cref="IObjectStore.ContentTagAsync"/>) says about the bytes read
/// later: a sha256 (local files) and a plain S3 ETag (an MD5 of the body) are content hashes and
/// are checked against the bytes; an ETag that is not an MD5 (of a multipart upload, <c>md5-N</c>,
/// or of an object encrypted with SSE-KMS or SSE-C) names a version only, so the version the store
/// served (<see cref="FileDigest.VersionTag"/>) must be that one, and the bytes are hashed (sha256)
/// as they stream.
/// </summary>
internal static class ContentTags
{
    /// <summary>Whether the bytes read still are what was listed under this tag and size.</summary>
    public static bool Matches(string tag, long size, FileDigest digest) => digest.VersionTag is { } served
        ? size == digest.Size && string.Equals(tag, served, StringComparison.OrdinalIgnoreCase)
        : tag.Length switch
        {
            64 => string.Equals(tag, digest.Sha256, StringComparison.OrdinalIgnoreCase),
            32 => string.Equals(tag, digest.Md5, StringComparison.OrdinalIgnoreCase),
            _ => size == digest.Size,
        };

    /// <summary>
    /// Whether an S3 ETag is the MD5 of the object's bytes: 32 hex digits of an object stored
    /// unencrypted or with SSE-S3. S3 says otherwise with <c>x-amz-server-side-encryption:
    /// aws:kms</c> (or <c>aws:kms:dsse</c>) and with the SSE-C customer-algorithm header; a
    /// multipart upload's ETag has a dash and a part count.
    /// </summary>
    public static bool IsMd5ETag(string? etag, string? serverSideEncryption, string? customerAlgorithm) =>
        etag is { Length: 32 } && etag.All(char.IsAsciiHexDigit)
        && string.IsNullOrEmpty(customerAlgorithm)
        && !(serverSideEncryption ?? "").StartsWith("aws:kms", StringComparison.Ordinal);
}
