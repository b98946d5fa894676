using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>Builds <c>input</c>: where the dataset is, which files are selected and how they form units and tasks.</summary>
internal static class InputSection
{
    public static InputSpec? Build(YamlMappingNode? node, ParseContext ctx, string? baseDir)
    {
        if (node is null)
        {
            return null;
        }

        var f = new YamlFields(node, "input", ctx);
        f.Known("uri", "include", "exclude", "group_by", "batch", "samplesheet");
        var uri = Locations.Resolve(f, "uri", required: true, baseDir, ctx);
        var include = f.StringList("include") ?? ["**"];
        var exclude = f.StringList("exclude") ?? [];
        foreach (var (glob, i) in include.Select((g, i) => (g, i)))
        {
            f.CheckGlob("include", i, glob);
        }

        foreach (var (glob, i) in exclude.Select((g, i) => (g, i)))
        {
            f.CheckGlob("exclude", i, glob);
        }

        var groupBy = f.String("group_by", required: false);
        GroupByPattern? groupByPattern = null;
        if (groupBy is not null)
        {
            try
            {
                // Compiled here, once: the planner matches every listed key with this regex.
                groupByPattern = GroupByPattern.Compile(groupBy);
                if (groupByPattern.Captures.Count == 0)
                {
                    ctx.Add(f.Node("group_by")!, "input.group_by", "has no named capture; files are grouped by named captures such as (?<sample>[^/]+)");
                }
            }
            catch (ArgumentException e)
            {
                ctx.Add(f.Node("group_by")!, "input.group_by", "is not a valid .NET regular expression: " + e.Message);
            }
        }

        var auto = f.Node("batch") is YamlScalarNode { Value: "auto" };
        var batch = auto ? 1 : f.Int("batch", required: false) ?? 1;
        if (batch < 1)
        {
            ctx.Add(f.Node("batch")!, "input.batch", $"is {batch}; a task holds at least 1 unit");
        }

        string? samplesheet = null;
        if (f.Node("samplesheet") is not null)
        {
            samplesheet = Locations.Resolve(f, "samplesheet", required: true, baseDir, ctx);
            if (groupBy is not null)
            {
                ctx.Warn(f.Node("group_by")!, "input.group_by", "is ignored: input.samplesheet says which files form a unit");
            }

            if (f.Node("include") is not null || f.Node("exclude") is not null)
            {
                ctx.Warn(f.Node(f.Node("include") is not null ? "include" : "exclude")!, "input.include/exclude", "are ignored: input.samplesheet lists the files");
            }
        }

        return uri is null ? null : new InputSpec(uri, include, exclude, groupBy, Math.Max(batch, 1), samplesheet) { GroupByPattern = groupByPattern, BatchAuto = auto };
    }
}
