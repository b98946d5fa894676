namespace Pipelines.Storage;

/// <summary>
/// What a content tag (<see cref="IObjectStore.ContentTagAsync"/>) says about the bytes read
/// later: a sha256 (local files) and a plain S3 ETag (an MD5 of the body) are content hashes and
/// are checked; a multipart ETag (<c>md5-N</c>) is not a hash of the content, so only the size is.
/// </summary>
internal static class ContentTags
{
    /// <summary>Whether the bytes read still are what was listed under this tag and size.</summary>
    public static bool Matches(string tag, long size, FileDigest digest) => tag.Length switch
    {
        64 => string.Equals(tag, digest.Sha256, StringComparison.OrdinalIgnoreCase),
        32 => string.Equals(tag, digest.Md5, StringComparison.OrdinalIgnoreCase),
        _ => size == digest.Size,
    };
}
