using System.Text;
using System.Text.RegularExpressions;
using Pipelines.Functions;
using Pipelines.Model;

namespace Pipelines.Tests.Model;

/// <summary>
/// Malformed YAML made from valid workflow and function files, fault by fault and line by line,
/// each with LF and CRLF line ends, with and without a byte order mark: every error must name
/// the line and column where the fault was planted (one home for the placing: Model/YamlLoader).
/// The corpus in MalformedYaml/ holds one of each; this holds every place a user can put them.
/// </summary>
[Unit]
public sealed partial class MalformedYamlVariantsTests
{
    /// <summary>One malformed file: its text, and where its fault is.</summary>
    public sealed record Variant(string Description, string Yaml, int Line, int Column);

    public static TheoryData<string> Faults() => new(Planters.Keys.Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(Faults))]
    public void Every_variant_of_a_fault_is_reported_at_the_place_it_was_planted(string fault)
    {
        var variants = Variants(fault).ToList();
        var misplaced = new List<string>();
        foreach (var v in variants)
        {
            foreach (var (kind, parse) in Parsers)
            {
                var problems = parse(v.Yaml);
                var yamlProblems = problems.Where(p => p.Message.StartsWith("not valid YAML: ", StringComparison.Ordinal)).ToList();
                if (yamlProblems.Count != 1 || problems.Count != 1 || (yamlProblems[0].Line, yamlProblems[0].Column) != (v.Line, v.Column))
                {
                    misplaced.Add($"{kind}, {v.Description}: planted at {v.Line}:{v.Column}, reported "
                        + (problems.Count == 0 ? "nothing" : string.Join("; ", problems.Select(p => $"{p.Line}:{p.Column} {p.Message}"))));
                }
            }
        }

        Assert.True(variants.Count >= 8, $"only {variants.Count} variant(s) of {fault}: the planter found too few places");
        Assert.True(misplaced.Count == 0, $"{misplaced.Count} of {variants.Count * Parsers.Length} misplaced:\n" + string.Join('\n', misplaced.Take(40)));
    }

    private static readonly (string Kind, Func<string, IReadOnlyList<WorkflowProblem>> Parse)[] Parsers =
    [
        ("workflow", yaml => Problems(() => WorkflowParser.Parse(yaml, "v.yaml", "/work/flows"))),
        ("function", yaml => Problems(() => FunctionParser.Parse(yaml, "v.yaml"))),
    ];

    private static IReadOnlyList<WorkflowProblem> Problems(Action parse)
    {
        try
        {
            parse();
            return [];
        }
        catch (WorkflowInvalidException e)
        {
            return e.Problems;
        }
        catch (FunctionInvalidException e)
        {
            return e.Problems;
        }
    }

    /// <summary>A line of the valid files: its indentation, an item's dash, its key and what follows the colon.</summary>
    [GeneratedRegex(@"^(?<indent> *)(?<dash>- )?(?<key>[A-Za-z_]+):(?<rest> .*)?$")]
    private static partial Regex KeyLine();

    /// <summary>A plain scalar: no indicator, quote or comment where it starts.</summary>
    private static bool IsPlain(string value) => value.Length > 0 && !"[{\"'|>&*#!%@`".Contains(value[0], StringComparison.Ordinal);

    private delegate IEnumerable<(string[] Lines, int Line, int Column)> Planter(string[] lines, int i, Match m);

    /// <summary>Each fault, planted at line <c>i</c> (0-based) when it fits there: the new lines and the fault's 1-based place.</summary>
    private static readonly Dictionary<string, Planter> Planters = new(StringComparer.Ordinal)
    {
        ["unclosed double quote"] = (lines, i, m) => Quote(lines, i, m, '"'),
        ["unclosed single quote"] = (lines, i, m) => Quote(lines, i, m, '\''),
        ["unclosed bracket"] = (lines, i, m) => Unclosed(lines, i, '[', ']'),
        ["unclosed brace"] = (lines, i, m) => Unclosed(lines, i, '{', '}'),
        ["alias of no anchor"] = (lines, i, m) => Value(lines, i, m, "*nope", 0),
        ["anchor with no name"] = (lines, i, m) => Value(lines, i, m, "& x", 0),
        ["duplicate key"] = DuplicateKey,
        ["control character"] = Control,
        ["YAML 1.1 line break in a value"] = OtherLineBreak,
        ["over-indented key"] = OverIndented,
        ["under-indented key"] = UnderIndented,
        ["text after a closing quote"] = (lines, i, m) => Value(lines, i, m, "\"x\" y", 4),
        ["unknown escape"] = (lines, i, m) => Value(lines, i, m, "\"a\\qb\"", 2),
        ["tab in a value's indentation"] = (lines, i, m) => m.Success && m.Groups["dash"].Length == 0 && m.Groups["indent"].Length > 0
            ? [(With(lines, i, "\t" + lines[i].TrimStart(' ')), i + 1, 1)]
            : [],
    };

    private static IEnumerable<Variant> Variants(string fault)
    {
        foreach (var (kind, text) in new[] { ("workflow", YamlErrorPlacementTests.Workflow), ("function", YamlErrorPlacementTests.Function) })
        {
            var lines = text.Split('\n');
            for (var i = 0; i < lines.Length; i++)
            {
                foreach (var (planted, line, column) in Planters[fault](lines, i, KeyLine().Match(lines[i])))
                {
                    foreach (var (ending, bom) in new[] { ("LF", false), ("CRLF", false), ("LF", true), ("CRLF", true) })
                    {
                        var yaml = (bom ? "\uFEFF" : "") + string.Join(ending == "LF" ? "\n" : "\r\n", planted) + (ending == "LF" ? "\n" : "\r\n");
                        yield return new Variant($"{fault} on line {i + 1} of the {kind} ({ending}{(bom ? ", BOM" : "")})", yaml, line, column);
                    }
                }
            }
        }
    }

    private static string[] With(string[] lines, int i, params string[] replacement) => [.. lines[..i], .. replacement, .. lines[(i + 1)..]];

    /// <summary>A plain value (or list item) replaced: <paramref name="at"/> is the fault's offset in the new value.</summary>
    private static IEnumerable<(string[], int, int)> Value(string[] lines, int i, Match m, string value, int at)
    {
        if (m.Success && m.Groups["rest"].Length > 1 && IsPlain(m.Groups["rest"].Value[1..]))
        {
            var start = m.Groups["rest"].Index + 1;
            yield return (With(lines, i, lines[i][..start] + value), i + 1, start + at + 1);
        }
        else if (lines[i].TrimStart(' ') is ['-', ' ', .. var item] && IsPlain(item))
        {
            var start = lines[i].Length - item.Length;
            yield return (With(lines, i, lines[i][..start] + value), i + 1, start + at + 1);
        }
    }

    private static IEnumerable<(string[], int, int)> Quote(string[] lines, int i, Match m, char quote)
    {
        var value = m.Success && m.Groups["rest"].Length > 1 ? m.Groups["rest"].Value[1..] : lines[i].TrimStart(' ') is ['-', ' ', .. var item] ? item : "";
        return Value(lines, i, m, quote + value, 0);
    }

    private static IEnumerable<(string[], int, int)> Unclosed(string[] lines, int i, char open, char close)
    {
        var text = lines[i].TrimEnd();
        var at = text.IndexOf(open, StringComparison.Ordinal);
        if (at >= 0 && text.EndsWith(close) && text.IndexOf(open, at + 1) < 0)
        {
            yield return (With(lines, i, text[..^1]), i + 1, at + 1);
        }
    }

    private static IEnumerable<(string[], int, int)> DuplicateKey(string[] lines, int i, Match m)
    {
        if (m.Success && m.Groups["rest"].Length > 1 && !m.Groups["rest"].Value.TrimStart().StartsWith('#'))
        {
            var indent = m.Groups["indent"].Length + m.Groups["dash"].Length;
            var copy = new string(' ', indent) + m.Groups["key"].Value + ":" + m.Groups["rest"].Value;
            yield return ([.. lines[..(i + 1)], copy, .. lines[(i + 1)..]], i + 2, indent + 1);
        }
    }

    private static IEnumerable<(string[], int, int)> Control(string[] lines, int i, Match m)
    {
        // C0 controls but tab and line ends, DEL, a C1 control: YAML allows none of them in a file.
        foreach (var c in new[] { '\u0000', '\u0001', '\u0007', '\u001b', '\u007f', '\u0090' })
        {
            foreach (var v in Value(lines, i, m, "a" + c + "b", 1))
            {
                yield return v;
            }
        }
    }

    private static IEnumerable<(string[], int, int)> OtherLineBreak(string[] lines, int i, Match m)
    {
        // NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR: YamlDotNet ends a line at each, so the value
        // would come back cut or folded; refused where it stands.
        foreach (var c in new[] { '\u0085', '\u2028', '\u2029' })
        {
            foreach (var v in Value(lines, i, m, "a" + c + "b", 1))
            {
                yield return v;
            }
        }
    }

    private static IEnumerable<(string[], int, int)> OverIndented(string[] lines, int i, Match m)
    {
        // A key one space deeper than the sibling above it, whose value was a plain scalar: the
        // line reads as that scalar's continuation, and its colon is the fault.
        if (i == 0 || !m.Success || m.Groups["dash"].Length > 0 || KeyLine().Match(lines[i - 1]) is not { Success: true } above
            || above.Groups["dash"].Length > 0 || above.Groups["indent"].Length != m.Groups["indent"].Length
            || above.Groups["rest"].Length <= 1 || !IsPlain(above.Groups["rest"].Value[1..]))
        {
            yield break;
        }

        yield return (With(lines, i, " " + lines[i]), i + 1, m.Groups["key"].Index + m.Groups["key"].Length + 2);
    }

    private static IEnumerable<(string[], int, int)> UnderIndented(string[] lines, int i, Match m)
    {
        // A nested key one space less deep than the sibling above it: it belongs to no mapping,
        // and its own first character is the fault.
        if (i == 0 || !m.Success || m.Groups["dash"].Length > 0 || m.Groups["indent"].Length == 0
            || KeyLine().Match(lines[i - 1]) is not { Success: true } above || above.Groups["dash"].Length > 0
            || above.Groups["indent"].Length != m.Groups["indent"].Length)
        {
            yield break;
        }

        yield return (With(lines, i, lines[i][1..]), i + 1, m.Groups["indent"].Length);
    }
}
