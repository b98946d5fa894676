using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Pipelines.Tests.Support;

/// <summary>
/// Checks an AWS Signature Version 4 as S3 does, from the request as it arrived: written here
/// from AWS's description (canonical request, string to sign, the HMAC key chain), independently
/// of the SDK that signed it, so that a test proves which secret signed which headers.
/// </summary>
public static partial class SigV4
{
    /// <summary>The parts of an Authorization header: access key id, scope, signed headers, signature.</summary>
    public sealed record Authorization(string AccessKeyId, string Date, string Region, string Service, IReadOnlyList<string> SignedHeaders, string Signature);

    public static Authorization Parse(string header)
    {
        var m = AuthorizationPattern().Match(header);
        if (!m.Success)
        {
            throw new FormatException("not an AWS4-HMAC-SHA256 Authorization header: " + header);
        }

        return new Authorization(m.Groups["key"].Value, m.Groups["date"].Value, m.Groups["region"].Value, m.Groups["service"].Value, m.Groups["signed"].Value.Split(';'), m.Groups["signature"].Value);
    }

    /// <summary>Whether the request's signature is the one <paramref name="secret"/> makes over its signed headers.</summary>
    public static bool Verify(S3Recorder.RecordedRequest request, string secret)
    {
        var auth = Parse(request.Header("authorization") ?? throw new InvalidOperationException("the request has no Authorization header"));
        var (path, query) = Split(request.RawUrl);
        var canonical = string.Join('\n',
            request.Method,
            path,
            CanonicalQuery(query),
            string.Concat(auth.SignedHeaders.Select(h => h + ":" + Collapse(request.Header(h) ?? "") + "\n")),
            string.Join(';', auth.SignedHeaders),
            request.Header("x-amz-content-sha256") ?? Hex(SHA256.HashData(request.Body)));
        var scope = $"{auth.Date}/{auth.Region}/{auth.Service}/aws4_request";
        var toSign = string.Join('\n', "AWS4-HMAC-SHA256", request.Header("x-amz-date"), scope, Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonical))));
        var key = Encoding.UTF8.GetBytes("AWS4" + secret);
        foreach (var part in new[] { auth.Date, auth.Region, auth.Service, "aws4_request" })
        {
            key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(part));
        }

        return Hex(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(toSign))) == auth.Signature;
    }

    private static (string Path, string Query) Split(string rawUrl)
    {
        var q = rawUrl.IndexOf('?', StringComparison.Ordinal);
        return q < 0 ? (rawUrl, "") : (rawUrl[..q], rawUrl[(q + 1)..]);
    }

    // The client sends each name and value URI-encoded already; canonical order is by name, then value.
    private static string CanonicalQuery(string query) => string.Join('&', query.Split('&', StringSplitOptions.RemoveEmptyEntries)
        .Select(p => p.Contains('=', StringComparison.Ordinal) ? p : p + "=")
        .Select(p => (Name: p[..p.IndexOf('=', StringComparison.Ordinal)], Value: p[(p.IndexOf('=', StringComparison.Ordinal) + 1)..]))
        .OrderBy(p => p.Name, StringComparer.Ordinal).ThenBy(p => p.Value, StringComparer.Ordinal)
        .Select(p => p.Name + "=" + p.Value));

    private static string Collapse(string value) => SpacesPattern().Replace(value.Trim(), " ");

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);

    [GeneratedRegex(@"^AWS4-HMAC-SHA256 Credential=(?<key>[^/]+)/(?<date>\d{8})/(?<region>[^/]+)/(?<service>[^/]+)/aws4_request, ?SignedHeaders=(?<signed>[^,]+), ?Signature=(?<signature>[0-9a-f]{64})$")]
    private static partial Regex AuthorizationPattern();

    [GeneratedRegex(" +")]
    private static partial Regex SpacesPattern();
}
