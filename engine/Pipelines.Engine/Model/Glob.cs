using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace Pipelines.Model;

/// <summary>
/// Globs over '/'-separated keys: <c>**</c> spans folders (also none), <c>*</c> and <c>?</c> stay
/// within one folder, <c>[abc]</c> and <c>{a,b}</c> as in a shell. Every character but '/' is
/// matched by <c>*</c> and <c>?</c>, newlines and other control characters included.
/// </summary>
internal sealed class Glob
{
    /// <summary>How many parsed globs are kept for their patterns (<see cref="Parse"/>); past it, the cache starts again.</summary>
    internal const int Cached = 256;

    // A glob compiles its regex to code, which costs about a millisecond of CPU: a pattern used
    // for every task (a step's outputs, a trigger's filter) is compiled once per process, not per
    // use. Bounded, so a server that meets ever new patterns does not grow with them.
    private static readonly ConcurrentDictionary<string, Glob> Parsed = new(StringComparer.Ordinal);

    private readonly Regex _regex;

    /// <summary>How many globs the cache holds now.</summary>
    internal static int CachedCount => Parsed.Count;

    private Glob(string pattern, Regex regex)
    {
        Pattern = pattern;
        _regex = regex;
    }

    public string Pattern { get; }

    /// <summary>The glob of <paramref name="pattern"/>, parsed once while it is in the cache (a glob never changes).</summary>
    public static Glob Parse(string pattern)
    {
        if (Parsed.TryGetValue(pattern, out var known))
        {
            return known;
        }

        var glob = Compile(pattern);
        if (Parsed.Count >= Cached)
        {
            Parsed.Clear();
        }

        Parsed[pattern] = glob;
        return glob;
    }

    private static Glob Compile(string pattern)
    {
        var error = Check(pattern);
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(pattern));
        }

        // Singleline and \z: '**' spans newlines too, and '$' would also match before a final
        // newline, so a key's every character is matched (a name is kept or refused, never skipped).
        return new Glob(pattern, new Regex(@"\A" + ToRegex(pattern) + @"\z", RegexOptions.CultureInvariant | RegexOptions.Singleline | RegexOptions.Compiled));
    }

    public bool IsMatch(string key) => _regex.IsMatch(key);

    /// <summary>A user-facing message when the pattern cannot be used, else null.</summary>
    public static string? Check(string pattern)
    {
        if (pattern.Length == 0)
        {
            return "is an empty glob";
        }

        if (pattern.StartsWith('/'))
        {
            return $"'{pattern}' starts with '/'; globs are relative, e.g. '**/*.fastq'";
        }

        if (pattern.Split('/').Any(s => s == ".."))
        {
            return $"'{pattern}' has a '..' segment; globs cannot leave their folder";
        }

        int brackets = 0, braces = 0;
        foreach (var c in pattern)
        {
            switch (c)
            {
                case '[': brackets++; break;
                case ']': brackets--; break;
                case '{': braces++; break;
                case '}': braces--; break;
            }

            if (brackets < 0 || braces < 0 || brackets > 1)
            {
                return $"'{pattern}' has unbalanced brackets or braces";
            }
        }

        return brackets != 0 || braces != 0 ? $"'{pattern}' has unbalanced brackets or braces" : null;
    }

    private static string ToRegex(string p)
    {
        var sb = new StringBuilder();
        var inBraces = 0;
        for (var i = 0; i < p.Length; i++)
        {
            var c = p[i];
            if (c == '*')
            {
                var doubleStar = i + 1 < p.Length && p[i + 1] == '*';
                if (doubleStar)
                {
                    var atStart = i == 0 || p[i - 1] == '/';
                    var slashAfter = i + 2 < p.Length && p[i + 2] == '/';
                    if (atStart && slashAfter)
                    {
                        sb.Append("(?:.*/)?");
                        i += 2;
                    }
                    else
                    {
                        sb.Append(".*");
                        i += 1;
                    }
                }
                else
                {
                    sb.Append("[^/]*");
                }
            }
            else if (c == '?')
            {
                sb.Append("[^/]");
            }
            else if (c == '[')
            {
                var end = p.IndexOf(']', i + 1);
                var body = p[(i + 1)..end];
                if (body.StartsWith('!') || body.StartsWith('^'))
                {
                    // Like every other glob character but '**', a negated class stays within one folder.
                    body = "^/" + body[1..];
                }

                sb.Append('[').Append(body.Replace("\\", "\\\\", StringComparison.Ordinal)).Append(']');
                i = end;
            }
            else if (c == '{')
            {
                inBraces++;
                sb.Append("(?:");
            }
            else if (c == '}' && inBraces > 0)
            {
                inBraces--;
                sb.Append(')');
            }
            else if (c == ',' && inBraces > 0)
            {
                sb.Append('|');
            }
            else
            {
                sb.Append(Regex.Escape(c.ToString()));
            }
        }

        return sb.ToString();
    }
}

/// <summary>Include and exclude globs together.</summary>
internal sealed class GlobFilter(IEnumerable<string> include, IEnumerable<string> exclude)
{
    private readonly Glob[] _include = include.Select(Glob.Parse).ToArray();
    private readonly Glob[] _exclude = exclude.Select(Glob.Parse).ToArray();

    public bool IsMatch(string key) =>
        _include.Any(g => g.IsMatch(key)) && !_exclude.Any(g => g.IsMatch(key));
}
