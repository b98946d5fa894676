using System.Globalization;
using Pipelines.Planning;

namespace Pipelines.Explain;

/// <summary>The components in which two identities of one unit differ, named by their path in the identity.</summary>
internal static class IdentityDiff
{
    public static IReadOnlyList<IdentityChange> Between(TaskIdentity before, TaskIdentity now)
    {
        var changes = new List<IdentityChange>();
        if (before.Format != now.Format)
        {
            changes.Add(new IdentityChange("format", Text(before.Format), Text(now.Format)));
        }

        // Inputs are matched by key: a changed tag is the same input with new content.
        var earlier = before.Inputs.Select((input, i) => (input, i)).ToDictionary(x => x.input.Key, StringComparer.Ordinal);
        var current = now.Inputs.Select(i => i.Key).ToHashSet(StringComparer.Ordinal);
        for (var i = 0; i < now.Inputs.Count; i++)
        {
            var input = now.Inputs[i];
            if (!earlier.TryGetValue(input.Key, out var was))
            {
                changes.Add(new IdentityChange($"inputs[{i}]", null, input.Tag, input.Key));
            }
            else if (!string.Equals(was.input.Tag, input.Tag, StringComparison.Ordinal))
            {
                changes.Add(new IdentityChange($"inputs[{i}]", was.input.Tag, input.Tag, input.Key));
            }
        }

        foreach (var (input, i) in before.Inputs.Select((input, i) => (input, i)).Where(x => !current.Contains(x.input.Key)))
        {
            changes.Add(new IdentityChange($"inputs[{i}]", input.Tag, null, input.Key));
        }

        Map(changes, "captures", before.Captures, now.Captures);
        for (var s = 0; s < Math.Max(before.Steps.Count, now.Steps.Count); s++)
        {
            var path = $"steps[{s}]";
            if (s >= before.Steps.Count || s >= now.Steps.Count)
            {
                changes.Add(new IdentityChange(path, s < before.Steps.Count ? before.Steps[s].Name : null, s < now.Steps.Count ? now.Steps[s].Name : null));
                continue;
            }

            var (b, n) = (before.Steps[s], now.Steps[s]);
            Value(changes, path + ".name", b.Name, n.Name);
            Value(changes, path + ".image_digest", $"{b.Image}@{b.ImageDigest}", $"{n.Image}@{n.ImageDigest}", b.ImageDigest != n.ImageDigest);
            for (var a = 0; a < Math.Max(b.Command.Count, n.Command.Count); a++)
            {
                Value(changes, $"{path}.command[{a}]", a < b.Command.Count ? b.Command[a] : null, a < n.Command.Count ? n.Command[a] : null);
            }

            Map(changes, path + ".env", b.Env, n.Env);
            Map(changes, path + ".resources", b.Resources, n.Resources);
            Value(changes, path + ".outputs", string.Join(", ", b.Outputs), string.Join(", ", n.Outputs));
        }

        return changes;
    }

    /// <summary>What kind of content tag this is, for people: a sha256, an md5 (a plain S3 ETag), or another tag.</summary>
    public static string TagKind(string tag) => tag.Length switch
    {
        64 => "sha256",
        32 => "md5",
        _ => "etag",
    };

    private static void Map(List<IdentityChange> changes, string path, IReadOnlyDictionary<string, string> before, IReadOnlyDictionary<string, string> now)
    {
        foreach (var key in before.Keys.Union(now.Keys).Order(StringComparer.Ordinal))
        {
            Value(changes, $"{path}.{key}", before.GetValueOrDefault(key), now.GetValueOrDefault(key));
        }
    }

    private static void Value(List<IdentityChange> changes, string path, string? before, string? now, bool? differs = null)
    {
        if (differs ?? !string.Equals(before, now, StringComparison.Ordinal))
        {
            changes.Add(new IdentityChange(path, before, now));
        }
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
