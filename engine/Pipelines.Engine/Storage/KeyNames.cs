using System.Globalization;
using System.Text;

namespace Pipelines.Storage;

/// <summary>
/// Which object keys the engine accepts as inputs, the same for local folders and buckets, and
/// how a key is shown in a message so that what is odd about it can be seen.
/// </summary>
internal static class KeyNames
{
    /// <summary>S3's limit on a key, in UTF-8 bytes.</summary>
    public const int MaxKeyBytes = 1024;

    /// <summary>Why the key can never be an input, or null when it can. Refused, never skipped.</summary>
    public static string? Problem(string key)
    {
        for (var i = 0; i < key.Length; i++)
        {
            var c = key[i];
            if (c < 0x20 || c == 0x7f)
            {
                // S3 XML listings cannot carry most of them, and neither can TSV, shells or logs.
                return "holds a control character";
            }

            // A name that is not UTF-8 arrives with U+FFFD in place of its bad bytes.
            if (c == '\uFFFD' || (char.IsSurrogate(c) && !IsPairedAt(key, i)))
            {
                return "is not valid UTF-8 (shown with U+FFFD)";
            }
        }

        // A task stages an input at in/KEY (and a function's output is read from /out/PATH): a
        // leading '/', an empty segment or a '.' or '..' segment would name a path outside that
        // folder, or another file than the key says. The one home of this rule, for a run's
        // listing (local folders and S3 alike), a trigger's keys and a function's output.
        if (key.Length == 0)
        {
            return "is empty";
        }

        var start = 0;
        while (start <= key.Length)
        {
            var end = key.IndexOf('/', start);
            var segment = key.AsSpan(start, (end < 0 ? key.Length : end) - start);
            if (segment is "." or "..")
            {
                return "escapes the prefix (a '.' or '..' segment: not a plain path)";
            }

            if (segment.IsEmpty)
            {
                return "has an empty segment (a leading '/', '//' or a trailing '/': not a plain path)";
            }

            if (end < 0)
            {
                break;
            }

            start = end + 1;
        }

        var bytes = Encoding.UTF8.GetByteCount(key);
        return bytes > MaxKeyBytes ? $"is {bytes} bytes long in UTF-8; S3 allows at most {MaxKeyBytes}" : null;
    }

    /// <summary>The key in quotes, with control characters written as escapes (\n, \t, \x01).</summary>
    public static string Escape(string key)
    {
        var sb = new StringBuilder(key.Length + 2).Append('\'');
        foreach (var c in key)
        {
            _ = c switch
            {
                '\n' => sb.Append("\\n"),
                '\r' => sb.Append("\\r"),
                '\t' => sb.Append("\\t"),
                '\\' => sb.Append("\\\\"),
                '\'' => sb.Append("\\'"),
                _ when c < 0x20 || c == 0x7f => sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)),
                _ => sb.Append(c),
            };
        }

        return sb.Append('\'').ToString();
    }

    private static bool IsPairedAt(string s, int i) =>
        char.IsHighSurrogate(s[i]) ? i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) : i > 0 && char.IsHighSurrogate(s[i - 1]);
}
