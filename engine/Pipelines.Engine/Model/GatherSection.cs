using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>Builds <c>gather</c>: the tables merged from every task's kept outputs.</summary>
internal static class GatherSection
{
    public static List<GatherSpec>? Build(YamlSequenceNode? node, ParseContext ctx, IReadOnlyList<StepSpec>? steps)
    {
        if (node is null)
        {
            return null;
        }

        var result = new List<GatherSpec>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < node.Children.Count; i++)
        {
            var path = $"gather[{i}]";
            if (node.Children[i] is not YamlMappingNode map)
            {
                ctx.Add(node.Children[i], path, "must be a mapping with name and from");
                continue;
            }

            var f = new YamlFields(map, path, ctx);
            f.Known("name", "from", "format", "header", "columns", "to");
            var name = f.String("name", required: true);
            if (name is not null && !NamePatterns.Step().IsMatch(name))
            {
                ctx.Add(f.Node("name")!, path + ".name", $"'{name}' is not a table name: use lower-case letters, digits, '-' and '_'");
            }
            else if (name is not null && !names.Add(name))
            {
                ctx.Add(f.Node("name")!, path + ".name", $"'{name}' is used by an earlier gather; names must be unique");
            }

            var from = f.String("from", required: true);
            string? fromStep = null, fromGlob = null;
            if (from is not null)
            {
                var slash = from.IndexOf('/', StringComparison.Ordinal);
                if (slash <= 0 || slash == from.Length - 1)
                {
                    ctx.Add(f.Node("from")!, path + ".from", $"'{from}' must be <step>/<glob>, e.g. stats/*.tsv");
                }
                else
                {
                    fromStep = from[..slash];
                    fromGlob = from[(slash + 1)..];
                    if (steps is not null && steps.All(s => s.Name != fromStep))
                    {
                        ctx.Add(f.Node("from")!, path + ".from", $"names step '{fromStep}', which is not a step of this workflow (steps: {string.Join(", ", steps.Select(s => s.Name))})");
                    }

                    var globError = Glob.Check(fromGlob);
                    if (globError is not null)
                    {
                        ctx.Add(f.Node("from")!, path + ".from", globError);
                    }
                }
            }

            var format = TableFormat.Tsv;
            var formatText = f.String("format", required: false);
            if (formatText is null && from is not null && from.EndsWith(".csv", StringComparison.OrdinalIgnoreCase))
            {
                format = TableFormat.Csv;
            }
            else if (formatText is not null)
            {
                switch (formatText)
                {
                    case "tsv": format = TableFormat.Tsv; break;
                    case "csv": format = TableFormat.Csv; break;
                    default: ctx.Add(f.Node("format")!, path + ".format", $"'{formatText}' is not a table format; write 'tsv' or 'csv'"); break;
                }
            }

            var header = f.Bool("header") ?? true;
            var columns = f.StringList("columns");
            if (!header && columns is null)
            {
                ctx.Add(map, path + ".columns", "is required when header is false: name each column, e.g. [file, reads, bases]");
            }

            if (columns is not null)
            {
                var dup = columns.GroupBy(c => c, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
                if (dup is not null)
                {
                    ctx.Add(f.Node("columns")!, path + ".columns", $"names '{dup.Key}' twice");
                }

                if (columns.Any(string.IsNullOrWhiteSpace))
                {
                    ctx.Add(f.Node("columns")!, path + ".columns", "has an empty column name");
                }
            }

            var toTexts = f.StringList("to") ?? ["parquet"];
            var to = new List<ResultFormat>();
            foreach (var t in toTexts)
            {
                switch (t)
                {
                    case "parquet": to.Add(ResultFormat.Parquet); break;
                    case "csv": to.Add(ResultFormat.Csv); break;
                    default: ctx.Add(f.Node("to")!, path + ".to", $"'{t}' is not a result format; write parquet and/or csv"); break;
                }
            }

            if (name is not null && fromStep is not null && fromGlob is not null)
            {
                result.Add(new GatherSpec(name, fromStep, fromGlob, format, header, columns, to.Distinct().ToList()));
            }
        }

        return result;
    }
}
