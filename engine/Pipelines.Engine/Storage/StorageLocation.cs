namespace Pipelines.Storage;

/// <summary>A place named by a URI: a store plus a key prefix ('' or ending in '/').</summary>
public sealed record StorageLocation(IObjectStore Store, string Prefix, string Uri)
{
    /// <summary>The bucket, for a location in an S3 bucket; null for a local folder.</summary>
    public string? Bucket { get; init; }

    public string Key(string relative) => Prefix + relative;

    public StorageLocation Child(string relative) =>
        new(Store, Prefix + relative.TrimEnd('/') + "/", Uri.TrimEnd('/') + "/" + relative.TrimEnd('/') + "/");

    public string Display(string relative) => Uri.TrimEnd('/') + "/" + relative;
}
