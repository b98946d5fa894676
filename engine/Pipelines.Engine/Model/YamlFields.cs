using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>Typed access to the fields of one mapping, reporting wrong shapes at their nodes.</summary>
internal sealed class YamlFields(YamlMappingNode map, string path, ParseContext ctx)
{
    public string Path { get; } = path;

    public static YamlNode? Child(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

    private string Sub(string field) => Path.Length == 0 ? field : $"{Path}.{field}";

    public YamlNode? Node(string field) => Child(map, field);

    public void Known(params string[] fields)
    {
        foreach (var key in map.Children.Keys)
        {
            var name = (key as YamlScalarNode)?.Value ?? "?";
            if (!fields.Contains(name))
            {
                var near = fields.OrderBy(f => Distance(f, name)).First();
                var hint = Distance(near, name) <= 2 ? $"; did you mean '{near}'?" : $"; expected one of {string.Join(", ", fields)}";
                ctx.Add(key, Sub(name), "is not a known field" + hint);
            }
        }
    }

    public string? String(string field, bool required)
    {
        var node = Node(field);
        if (node is null)
        {
            if (required)
            {
                ctx.Add(map, Sub(field), "is missing");
            }

            return null;
        }

        if (node is YamlScalarNode s)
        {
            if (s.Value is null || (s.Style == YamlDotNet.Core.ScalarStyle.Plain && s.Value is "~" or "null" or ""))
            {
                if (required)
                {
                    ctx.Add(node, Sub(field), "is empty");
                }

                return null;
            }

            return s.Value;
        }

        ctx.Add(node, Sub(field), "must be a single value, not a " + (node is YamlSequenceNode ? "list" : "mapping"));
        return null;
    }

    public int? Int(string field, bool required)
    {
        var text = String(field, required);
        if (text is null)
        {
            return null;
        }

        if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
        {
            return v;
        }

        ctx.Add(Node(field)!, Sub(field), $"'{text}' is not a whole number");
        return null;
    }

    public bool? Bool(string field)
    {
        var text = String(field, required: false);
        return text switch
        {
            null => null,
            "true" or "True" or "yes" => true,
            "false" or "False" or "no" => false,
            _ => Fail(),
        };

        bool? Fail()
        {
            ctx.Add(Node(field)!, Sub(field), $"'{text}' is not true or false");
            return null;
        }
    }

    public YamlMappingNode? Map(string field, bool required)
    {
        var node = Node(field);
        if (node is null)
        {
            if (required)
            {
                ctx.Add(map, Sub(field), "is missing");
            }

            return null;
        }

        if (node is YamlMappingNode m)
        {
            return m;
        }

        ctx.Add(node, Sub(field), "must be a mapping of fields");
        return null;
    }

    public YamlSequenceNode? Seq(string field, bool required)
    {
        var node = Node(field);
        if (node is null)
        {
            if (required)
            {
                ctx.Add(map, Sub(field), "is missing");
            }

            return null;
        }

        if (node is YamlSequenceNode s)
        {
            return s;
        }

        ctx.Add(node, Sub(field), "must be a list");
        return null;
    }

    public List<string>? StringList(string field)
    {
        var node = Node(field);
        if (node is null)
        {
            return null;
        }

        if (node is not YamlSequenceNode seq)
        {
            ctx.Add(node, Sub(field), "must be a list of strings, e.g. [\"a\", \"b\"]");
            return null;
        }

        var list = new List<string>();
        for (var i = 0; i < seq.Children.Count; i++)
        {
            if (seq.Children[i] is YamlScalarNode { Value: not null } s)
            {
                list.Add(s.Value);
            }
            else
            {
                ctx.Add(seq.Children[i], $"{Sub(field)}[{i}]", "must be a string");
            }
        }

        return list;
    }

    public Dictionary<string, string>? StringMap(string field)
    {
        var node = Node(field);
        if (node is null)
        {
            return null;
        }

        if (node is not YamlMappingNode m)
        {
            ctx.Add(node, Sub(field), "must be a mapping of names to values");
            return null;
        }

        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in m.Children)
        {
            var key = (k as YamlScalarNode)?.Value ?? "";
            if (v is YamlScalarNode { Value: not null } s)
            {
                result[key] = s.Value;
            }
            else
            {
                ctx.Add(v, $"{Sub(field)}.{key}", "must be a single value");
            }
        }

        return result;
    }

    /// <summary>Reports the item of a glob list (include, exclude, outputs) that is not a valid glob.</summary>
    public void CheckGlob(string field, int index, string glob)
    {
        var error = Glob.Check(glob);
        if (error is not null)
        {
            var seq = Node(field) as YamlSequenceNode;
            ctx.Add(seq?.Children[index] ?? Node(field)!, $"{Path}.{field}[{index}]", error);
        }
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }
        }

        return d[a.Length, b.Length];
    }
}
