using System.Text.RegularExpressions;

namespace Pipelines.Model;

/// <summary>
/// The rules for a location field (input.uri, input.samplesheet, output.uri, trigger.uri): s3://bucket/prefix,
/// file:// or an absolute path, or a path relative to the workflow file's folder.
/// </summary>
internal static partial class Locations
{
    /// <summary>The field's location: s3:// as written, a local path made absolute; null, with the problem reported, when it is missing or not allowed.</summary>
    public static string? Resolve(YamlFields f, string field, bool required, string? baseDir, ParseContext ctx)
    {
        var text = f.String(field, required);
        if (text is null)
        {
            return null;
        }

        var path = $"{f.Path}.{field}";
        var node = f.Node(field)!;
        if (text.Length == 0)
        {
            ctx.Add(node, path, "is empty");
            return null;
        }

        if (text.StartsWith("s3://", StringComparison.Ordinal))
        {
            var rest = text["s3://".Length..];
            var bucket = rest.Split('/')[0];
            if (!BucketPattern().IsMatch(bucket))
            {
                ctx.Add(node, path, $"'{text}' does not name a bucket: write s3://bucket/prefix/");
                return null;
            }

            if (rest.Split('/').Skip(1).Any(s => s is ".." or "."))
            {
                ctx.Add(node, path, $"'{text}' has '.' or '..' in its key prefix");
                return null;
            }

            return text;
        }

        if (text.Contains("://", StringComparison.Ordinal) && !text.StartsWith("file://", StringComparison.Ordinal))
        {
            ctx.Add(node, path, $"'{text}' has an unsupported scheme; use s3://bucket/prefix, file:///abs/path, /abs/path or a path relative to the workflow file");
            return null;
        }

        var local = text.StartsWith("file://", StringComparison.Ordinal) ? text["file://".Length..] : text;
        if (Path.IsPathRooted(local))
        {
            return Path.GetFullPath(local);
        }

        if (baseDir is null)
        {
            ctx.Add(node, path, $"'{text}' is a relative path, but this workflow was not read from a file; use an absolute path or s3://");
            return null;
        }

        return Path.GetFullPath(Path.Combine(baseDir, local));
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]{1,62}$")]
    private static partial Regex BucketPattern();
}
