using Amazon.Runtime;
using Amazon.S3;
using Microsoft.Extensions.Configuration;

namespace Pipelines.Storage;

/// <summary>Settings of the S3 client, from configuration (S3:*) or the standard AWS variables.</summary>
public sealed record S3Settings(string? Endpoint, string? AccessKey, string? SecretKey, string Region)
{
    public static S3Settings From(IConfiguration config) => new(
        config["S3:Endpoint"] ?? Environment.GetEnvironmentVariable("AWS_ENDPOINT_URL_S3") ?? Environment.GetEnvironmentVariable("AWS_ENDPOINT_URL"),
        config["S3:AccessKey"] ?? Environment.GetEnvironmentVariable("AWS_ACCESS_KEY_ID"),
        config["S3:SecretKey"] ?? Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY"),
        config["S3:Region"] ?? Environment.GetEnvironmentVariable("AWS_REGION") ?? Environment.GetEnvironmentVariable("AWS_DEFAULT_REGION") ?? "us-east-1");

    // A record's ToString prints every member; the secret key is left out, so that no message,
    // log line or debugger view that formats the settings can show it.
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append("Endpoint = ").Append(Endpoint).Append(", AccessKey = ").Append(AccessKey).Append(", Region = ").Append(Region);
        return true;
    }
}

/// <summary>Opens the store that a URI names: s3://bucket/prefix/ or a local folder.</summary>
public sealed class ObjectStoreFactory(S3Settings settings) : IDisposable
{
    private readonly Lazy<AmazonS3Client> _client = new(() => CreateClient(settings));
    private readonly Dictionary<string, IObjectStore> _schemes = new(StringComparer.Ordinal);

    /// <summary>
    /// Serves URIs <c>scheme://prefix/</c> from <paramref name="store"/>, beside s3:// and local
    /// folders: a store of another kind plugs in here, and no caller learns which it has.
    /// </summary>
    public ObjectStoreFactory Serve(string scheme, IObjectStore store)
    {
        if (scheme is "s3" or "file" || scheme.Length == 0 || !scheme.All(char.IsAsciiLetterLower))
        {
            throw new ArgumentException($"'{scheme}' cannot name another kind of store", nameof(scheme));
        }

        _schemes[scheme] = store;
        return this;
    }

    public StorageLocation Open(string uri)
    {
        var colon = uri.IndexOf("://", StringComparison.Ordinal);
        if (colon > 0 && _schemes.TryGetValue(uri[..colon], out var served))
        {
            var key = uri[(colon + 3)..];
            if (key.Length > 0 && !key.EndsWith('/'))
            {
                key += "/";
            }

            return new StorageLocation(served, key, uri[..(colon + 3)] + key);
        }

        if (uri.StartsWith("s3://", StringComparison.Ordinal))
        {
            var rest = uri["s3://".Length..];
            var slash = rest.IndexOf('/', StringComparison.Ordinal);
            var bucket = slash < 0 ? rest : rest[..slash];
            var prefix = slash < 0 ? "" : rest[(slash + 1)..];
            if (prefix.Length > 0 && !prefix.EndsWith('/'))
            {
                prefix += "/";
            }

            return new StorageLocation(new S3ObjectStore(_client.Value, bucket), prefix, "s3://" + bucket + "/" + prefix) { Bucket = bucket };
        }

        var path = uri.StartsWith("file://", StringComparison.Ordinal) ? uri["file://".Length..] : uri;
        var full = Path.GetFullPath(path);
        return new StorageLocation(new LocalObjectStore(full), "", full.TrimEnd('/') + "/");
    }

    /// <summary>Whether the S3 endpoint answers with these credentials (a bucket listing); throws what is wrong.</summary>
    public async Task PingEndpointAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _client.Value.ListBucketsAsync(new Amazon.S3.Model.ListBucketsRequest(), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AmazonServiceException or AmazonClientException or HttpRequestException or IOException)
        {
            throw new PipelinesException("S3: " + e.GetBaseException().Message, retryHelps: true, e);
        }
    }

    /// <summary>The S3 client, for tests and tools that create buckets.</summary>
    public IAmazonS3 S3Client => _client.Value;

    public void Dispose()
    {
        if (_client.IsValueCreated)
        {
            _client.Value.Dispose();
        }
    }

    private static AmazonS3Client CreateClient(S3Settings s)
    {
        var config = new AmazonS3Config
        {
            ForcePathStyle = true,
            AuthenticationRegion = s.Region,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            MaxErrorRetry = 2,
            Timeout = TimeSpan.FromMinutes(5),
        };
        if (s.Endpoint is not null)
        {
            config.ServiceURL = s.Endpoint;
        }
        else
        {
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(s.Region);
        }

        return s.AccessKey is not null && s.SecretKey is not null
            ? new AmazonS3Client(new BasicAWSCredentials(s.AccessKey, s.SecretKey), config)
            : new AmazonS3Client(config);
    }
}
