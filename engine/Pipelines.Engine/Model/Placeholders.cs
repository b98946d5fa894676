using System.Text;

namespace Pipelines.Model;

/// <summary>
/// The placeholders of <c>command</c> and <c>env</c>: <c>{inputs}</c>, <c>{input}</c>, <c>{out}</c>,
/// <c>{task}</c> and named captures. <c>{{</c> and <c>}}</c> stand for literal braces.
/// </summary>
internal static class Placeholders
{
    public const string Inputs = "inputs";
    public const string Input = "input";
    public const string Out = "out";
    public const string Task = "task";

    /// <summary>The names used in a text, or an error message when a brace is unbalanced.</summary>
    public static (IReadOnlyList<string> Names, string? Error) Scan(string text)
    {
        var names = new List<string>();
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '{')
            {
                if (i + 1 < text.Length && text[i + 1] == '{')
                {
                    i++;
                    continue;
                }

                var end = text.IndexOf('}', i + 1);
                if (end < 0)
                {
                    return (names, $"'{text}' has a '{{' without a closing '}}' (write '{{{{' for a literal brace)");
                }

                var name = text[(i + 1)..end];
                if (name.Length == 0 || !name.All(ch => char.IsAsciiLetterOrDigit(ch) || ch == '_'))
                {
                    return (names, $"'{text}' has an invalid placeholder '{{{name}}}'");
                }

                names.Add(name);
                i = end;
            }
            else if (c == '}')
            {
                if (i + 1 < text.Length && text[i + 1] == '}')
                {
                    i++;
                    continue;
                }

                return (names, $"'{text}' has a '}}' without an opening '{{' (write '}}}}' for a literal brace)");
            }
        }

        return (names, null);
    }

    /// <summary>Expands one command argument; <c>{inputs}</c> alone becomes several arguments.</summary>
    public static IEnumerable<string> ExpandArgument(string argument, PlaceholderValues values)
    {
        if (argument == "{" + Inputs + "}")
        {
            return values.InputPaths;
        }

        return [Expand(argument, values)];
    }

    /// <summary>Expands a text; <c>{inputs}</c> inside a larger text joins paths with spaces.</summary>
    public static string Expand(string text, PlaceholderValues values)
    {
        var sb = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if ((c == '{' || c == '}') && i + 1 < text.Length && text[i + 1] == c)
            {
                sb.Append(c);
                i++;
                continue;
            }

            if (c != '{')
            {
                sb.Append(c);
                continue;
            }

            var end = text.IndexOf('}', i + 1);
            var name = text[(i + 1)..end];
            sb.Append(name switch
            {
                Inputs => string.Join(' ', values.InputPaths),
                Input => values.InputPaths.Count == 1
                    ? values.InputPaths[0]
                    : throw new PipelinesException($"{{input}} needs exactly one input, this task has {values.InputPaths.Count}", retryHelps: false),
                Out => ContainerLayout.Out,
                Task => values.TaskId,
                _ => values.Captures.TryGetValue(name, out var v)
                    ? v
                    : throw new PipelinesException($"placeholder {{{name}}} has no value in this task", retryHelps: false),
            });
            i = end;
        }

        return sb.ToString();
    }
}

/// <summary>What the placeholders of one task expand to.</summary>
internal sealed record PlaceholderValues(
    IReadOnlyList<string> InputPaths,
    string TaskId,
    IReadOnlyDictionary<string, string> Captures);
