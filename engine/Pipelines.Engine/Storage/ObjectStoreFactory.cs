using Amazon.Runtime;
using Amazon.S3;
using Microsoft.Extensions.Configuration;

namespace Pipelines.Storage;

/// <summary>
/// Settings of the S3 client: S3:Endpoint and S3:Region (or the standard AWS variables), and
/// credentials only where they are given explicitly (S3:AccessKey, S3:SecretKey, optional
/// S3:SessionToken). Without them the SDK's own chain finds them, as every AWS tool does: the
/// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN), web identity
/// (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN), the shared profile (AWS_PROFILE, else default),
/// then the container's or the instance's role.
/// </summary>
public sealed record S3Settings(string? Endpoint, string? AccessKey, string? SecretKey, string Region)
{
    /// <summary>The session token of explicit temporary credentials (S3:SessionToken); never printed.</summary>
    public string? SessionToken { get; init; }

    /// <summary>What a user can set when no credentials were found or they were refused; one home for the hint.</summary>
    public const string CredentialSources = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN for temporary credentials), AWS_PROFILE, or S3:AccessKey and S3:SecretKey; on EC2, ECS or EKS a role";

    public static S3Settings From(IConfiguration config)
    {
        var settings = new S3Settings(
            config["S3:Endpoint"] ?? Environment.GetEnvironmentVariable("AWS_ENDPOINT_URL_S3") ?? Environment.GetEnvironmentVariable("AWS_ENDPOINT_URL"),
            NullIfEmpty(config["S3:AccessKey"]),
            NullIfEmpty(config["S3:SecretKey"]),
            config["S3:Region"] ?? Environment.GetEnvironmentVariable("AWS_REGION") ?? Environment.GetEnvironmentVariable("AWS_DEFAULT_REGION") ?? "us-east-1")
        {
            SessionToken = NullIfEmpty(config["S3:SessionToken"]),
        };
        if ((settings.AccessKey is null) != (settings.SecretKey is null) || (settings.SessionToken is not null && settings.AccessKey is null))
        {
            throw new PipelinesException("S3: set S3:AccessKey and S3:SecretKey together (S3:SessionToken only with them), or none of them to use the AWS credential chain", retryHelps: false);
        }

        return settings;
    }

    /// <summary>The explicit credentials, or null: the SDK's default chain then resolves them at the first request (and refreshes those that expire).</summary>
    internal AWSCredentials? ExplicitCredentials() => (AccessKey, SecretKey) switch
    {
        ({ } id, { } secret) when SessionToken is { } token => new SessionAWSCredentials(id, secret, token),
        ({ } id, { } secret) => new BasicAWSCredentials(id, secret),
        _ => null,
    };

    /// <summary>
    /// Whether the SDK's chain found no credentials at all (it says so in an AmazonClientException
    /// that lists every source it tried): a setting to fix, not an outage to wait out.
    /// </summary>
    public static bool IsMissingCredentials(Exception e) =>
        e is AmazonClientException && e.Message.StartsWith("Failed to resolve AWS credentials", StringComparison.Ordinal);

    /// <summary>The one-line error for <see cref="IsMissingCredentials"/>, naming what to set and no value.</summary>
    public static PipelinesException MissingCredentials(string what, Exception e) =>
        new($"{what}: no S3 credentials were found: set {CredentialSources}", retryHelps: false, e);

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    // A record's ToString prints every member; the secret key and the session token are left
    // out, so that no message, log line or debugger view that formats the settings can show them.
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append("Endpoint = ").Append(Endpoint).Append(", AccessKey = ").Append(AccessKey ?? "(the AWS credential chain)").Append(", Region = ").Append(Region);
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
        catch (Exception e) when (S3Settings.IsMissingCredentials(e))
        {
            throw S3Settings.MissingCredentials("S3", e);
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

        return s.ExplicitCredentials() is { } credentials
            ? new AmazonS3Client(credentials, config)
            : new AmazonS3Client(config);
    }
}
