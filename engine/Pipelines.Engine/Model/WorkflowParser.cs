using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>
/// Reads a workflow file into a <see cref="Workflow"/>, collecting every problem with its line,
/// column and field path before anything runs. Touches no I/O beyond the text it is given.
/// </summary>
public static class WorkflowParser
{
    /// <summary>Parses and validates; throws <see cref="WorkflowInvalidException"/> with every problem.</summary>
    /// <param name="yaml">The file's text.</param>
    /// <param name="source">How to name the file in messages.</param>
    /// <param name="baseDirectory">Folder that relative local paths are resolved against, or null when there is none (API submissions).</param>
    /// <param name="overrides">`key.path=value` pairs applied before validation (the CLI's --set).</param>
    public static Workflow Parse(string yaml, string source, string? baseDirectory, IReadOnlyList<string>? overrides = null)
    {
        var ctx = new ParseContext();
        var root = YamlLoader.Load(yaml, ctx, YamlLoader.Workflow);
        if (root is not null && overrides is not null)
        {
            foreach (var o in overrides)
            {
                WorkflowOverrides.Apply(root, o, ctx);
            }
        }

        Workflow? workflow = null;
        if (root is not null)
        {
            workflow = Build(root, ctx, baseDirectory);
        }

        if (ctx.Problems.Count > 0 || workflow is null)
        {
            // In file order, as an editor shows them; problems from --set (line 0) come last.
            var ordered = ctx.Problems.OrderBy(p => p.Line == 0 ? int.MaxValue : p.Line).ThenBy(p => p.Column).ToList();
            throw new WorkflowInvalidException(source, ordered);
        }

        return workflow with { Warnings = ctx.Warnings };
    }

    private static Workflow? Build(YamlMappingNode root, ParseContext ctx, string? baseDir)
    {
        var f = new YamlFields(root, "", ctx);
        f.Known("version", "name", "description", "input", "steps", "gather", "output", "on_error", "trigger");

        var version = f.Int("version", required: true);
        if (version is not null && version != 1)
        {
            ctx.Add(f.Node("version")!, "version", $"is {version}; this engine reads version 1");
        }

        var name = f.String("name", required: true);
        if (name is not null && !NamePatterns.Workflow().IsMatch(name))
        {
            ctx.Add(f.Node("name")!, "name", $"'{name}' is not a workflow name: use lower-case letters, digits and '-', starting with a letter or digit, at most 63 characters");
        }

        var description = f.String("description", required: false);
        var input = InputSection.Build(f.Map("input", required: true), ctx, baseDir);
        var steps = StepsSection.Build(f.Seq("steps", required: true), ctx);
        var gather = GatherSection.Build(f.Seq("gather", required: false), ctx, steps);
        var output = OutputSection.Build(f.Map("output", required: true), ctx, baseDir);
        var onError = OnError.Continue;
        var onErrorText = f.String("on_error", required: false);
        if (onErrorText is not null)
        {
            switch (onErrorText)
            {
                case "continue": onError = OnError.Continue; break;
                case "fail": onError = OnError.Fail; break;
                default: ctx.Add(f.Node("on_error")!, "on_error", $"'{onErrorText}' is not allowed; write 'continue' or 'fail'"); break;
            }
        }

        var trigger = TriggerSection.Build(f.Map("trigger", required: false), ctx, baseDir);

        if (input is not null && steps is not null)
        {
            PlaceholderCheck.Check(input, steps, ctx, f.Seq("steps", required: false));
        }

        if (version is null || name is null || input is null || steps is null || output is null || ctx.Problems.Count > 0)
        {
            return null;
        }

        return new Workflow(1, name, description, input, steps, gather ?? [], output, onError, trigger);
    }
}
