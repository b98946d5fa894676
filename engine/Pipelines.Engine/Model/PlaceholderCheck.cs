using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>Checks the placeholders of every command and env value against what the input provides.</summary>
internal static class PlaceholderCheck
{
    public static void Check(InputSpec input, IReadOnlyList<StepSpec> steps, ParseContext ctx, YamlSequenceNode? stepsNode)
    {
        var captures = new HashSet<string>(StringComparer.Ordinal);
        if (input.GroupBy is not null && input.Samplesheet is null)
        {
            try
            {
                captures.UnionWith(input.GroupByPattern!.Captures);
            }
            catch (ArgumentException)
            {
                // InputSection could not compile it either (not a regular expression) and has said so.
            }
        }

        if (input.Samplesheet is not null)
        {
            captures.Add("sample");
        }

        var known = new[] { Placeholders.Inputs, Placeholders.Input, Placeholders.Out, Placeholders.Task };
        for (var i = 0; i < steps.Count; i++)
        {
            var stepNode = stepsNode?.Children.ElementAtOrDefault(i) as YamlMappingNode;
            var commandNode = stepNode is null ? null : YamlFields.Child(stepNode, "command") as YamlSequenceNode;
            var envNode = stepNode is null ? null : YamlFields.Child(stepNode, "env");
            var texts = steps[i].Command.Select((t, j) => (Text: t, Path: $"steps[{i}].command[{j}]", Node: (YamlNode?)commandNode?.Children.ElementAtOrDefault(j), InCommand: true))
                .Concat(steps[i].Env.Select(kv => (Text: kv.Value, Path: $"steps[{i}].env.{kv.Key}", Node: envNode, InCommand: false)));
            foreach (var (text, path, node, inCommand) in texts)
            {
                var at = node ?? (YamlNode?)stepNode ?? new YamlScalarNode();
                var (names, error) = Placeholders.Scan(text);
                if (error is not null)
                {
                    ctx.Add(at, path, error);
                    continue;
                }

                foreach (var name in names)
                {
                    if (name == Placeholders.Inputs && inCommand && text != "{inputs}")
                    {
                        ctx.Add(at, path, "uses {inputs} inside a larger argument; {inputs} must stand alone as an argument, since it becomes one argument per input");
                    }
                    else if (name == Placeholders.Input && (input.Batch > 1 || (input.GroupBy is not null && input.Samplesheet is null)))
                    {
                        ctx.Add(at, path, input.Batch > 1
                            ? $"uses {{input}}, but batch is {input.Batch}, so a task has several inputs; use {{inputs}} or batch: 1"
                            : "uses {input}, but group_by makes units of several files; use {inputs}");
                    }
                    else if (captures.Contains(name))
                    {
                        if (input.Batch > 1)
                        {
                            ctx.Add(at, path, $"uses {{{name}}}, but batch is {input.Batch}, so a task holds several values of it; use batch: 1");
                        }
                    }
                    else if (!known.Contains(name))
                    {
                        var capturesText = captures.Count == 0 ? "" : ", " + string.Join(", ", captures.Order(StringComparer.Ordinal).Select(c => "{" + c + "}"));
                        ctx.Add(at, path, $"uses the unknown placeholder {{{name}}}; known here are {{inputs}}, {{input}}, {{out}}, {{task}}{capturesText}");
                    }
                }
            }
        }
    }
}
