using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>
/// The CLI's --set: writes <c>key.path=value</c> into the loaded YAML before validation, and marks
/// what it wrote so that problems in it point at the --set, not at a line of the file.
/// </summary>
internal static partial class WorkflowOverrides
{
    public static void Apply(YamlMappingNode root, string assignment, ParseContext ctx)
    {
        var eq = assignment.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0)
        {
            ctx.Problems.Add(new WorkflowProblem("--set " + assignment, "must look like key.path=value, e.g. input.batch=10", 0, 0));
            return;
        }

        var path = assignment[..eq].Trim();
        var valueText = assignment[(eq + 1)..];
        YamlNode value;
        try
        {
            // Read with the file's nesting limit: a deep value (the API's "set" takes any length)
            // would otherwise overflow the stack and end the server.
            var s = new YamlStream();
            s.Load(YamlLoader.Parser(valueText.Length == 0 ? "''" : valueText));
            value = s.Documents.Count > 0 ? s.Documents[0].RootNode : new YamlScalarNode(valueText);
        }
        catch (Exception e) when (e is YamlException or InvalidOperationException)
        {
            value = new YamlScalarNode(valueText);
        }

        MarkOverride(value, ctx, "--set " + path);
        var segments = OverrideSegment().Matches(path).Select(m => m.Value).ToList();
        if (!OverridePath().IsMatch(path))
        {
            ctx.Problems.Add(new WorkflowProblem("--set " + path, "is not a field path; write e.g. input.batch or steps[0].resources.memory", 0, 0));
            return;
        }

        YamlNode current = root;
        for (var i = 0; i < segments.Count; i++)
        {
            var seg = segments[i];
            var last = i == segments.Count - 1;
            if (seg.StartsWith('['))
            {
                // An index too large for an int names no item either (steps[99999999999]).
                if (!int.TryParse(seg.AsSpan(1, seg.Length - 2), NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                    || current is not YamlSequenceNode seq || index >= seq.Children.Count)
                {
                    ctx.Problems.Add(new WorkflowProblem("--set " + path, $"there is no item {seg} to set", 0, 0));
                    return;
                }

                if (last)
                {
                    seq.Children[index] = value;
                }
                else
                {
                    current = seq.Children[index];
                }
            }
            else
            {
                var key = seg;
                if (current is not YamlMappingNode m)
                {
                    ctx.Problems.Add(new WorkflowProblem("--set " + path, $"'{key}' is not inside a mapping", 0, 0));
                    return;
                }

                var k = new YamlScalarNode(key);
                if (!m.Children.ContainsKey(k))
                {
                    // A key the file does not have (perhaps misspelt): its problems belong to --set, not to line 1 of the file.
                    MarkOverride(k, ctx, "--set " + path);
                }

                if (last)
                {
                    m.Children[k] = value;
                }
                else if (m.Children.TryGetValue(k, out var next))
                {
                    current = next;
                }
                else
                {
                    var created = new YamlMappingNode();
                    MarkOverride(created, ctx, "--set " + path);
                    m.Children[k] = created;
                    current = created;
                }
            }
        }
    }

    private static void MarkOverride(YamlNode node, ParseContext ctx, string origin)
    {
        ctx.Overridden[node] = origin;
        foreach (var child in node.AllNodes)
        {
            ctx.Overridden[child] = origin;
        }
    }

    [GeneratedRegex(@"[^.\[\]]+|\[\d+\]")]
    private static partial Regex OverrideSegment();

    /// <summary>A whole override path: a field, then .field or [index] parts; no empty part (a..b), no sign ([-1]).</summary>
    [GeneratedRegex(@"^[^.\[\]]+(?:\.[^.\[\]]+|\[\d+\])*$")]
    private static partial Regex OverridePath();
}
