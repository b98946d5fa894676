using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>Builds <c>steps</c>: each container step with its command, env, secrets, retries and kept outputs.</summary>
internal static class StepsSection
{
    public static List<StepSpec>? Build(YamlSequenceNode? node, ParseContext ctx)
    {
        if (node is null)
        {
            return null;
        }

        if (node.Children.Count == 0)
        {
            ctx.Add(node, "steps", "is empty; a workflow needs at least one step");
            return null;
        }

        var steps = new List<StepSpec>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < node.Children.Count; i++)
        {
            var path = $"steps[{i}]";
            if (node.Children[i] is not YamlMappingNode map)
            {
                ctx.Add(node.Children[i], path, "must be a mapping with name, image and command");
                continue;
            }

            var f = new YamlFields(map, path, ctx);
            f.Known("name", "image", "command", "env", "secrets", "resources", "retries", "outputs", "reuse");
            var name = f.String("name", required: true);
            if (name is not null && !NamePatterns.Step().IsMatch(name))
            {
                ctx.Add(f.Node("name")!, path + ".name", $"'{name}' is not a step name: use lower-case letters, digits, '-' and '_', at most 63 characters");
            }
            else if (name is not null && !names.Add(name))
            {
                ctx.Add(f.Node("name")!, path + ".name", $"'{name}' is used by an earlier step; step names must be unique");
            }

            var image = f.String("image", required: true);
            if (image is not null && (image.Length == 0 || image.Any(char.IsWhiteSpace)))
            {
                ctx.Add(f.Node("image")!, path + ".image", $"'{image}' is not an image reference");
            }

            var command = f.StringList("command");
            if (command is null && f.Node("command") is null)
            {
                ctx.Add(map, path + ".command", "is missing; write the program and its arguments as a list, e.g. [\"fastq-stats\", \"{inputs}\"]");
            }
            else if (command is not null && command.Count == 0)
            {
                ctx.Add(f.Node("command")!, path + ".command", "is empty; name the program to run");
            }

            var env = f.StringMap("env") ?? new Dictionary<string, string>();
            foreach (var key in env.Keys.Where(k => !NamePatterns.EnvVariable().IsMatch(k)))
            {
                ctx.Add(f.Node("env")!, $"{path}.env.{key}", "is not a valid environment variable name");
            }

            var secrets = f.StringList("secrets") ?? [];
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (secret, si) in secrets.Select((s, si) => (s, si)))
            {
                var problem = !NamePatterns.EnvVariable().IsMatch(secret) ? $"'{secret}' is not a valid environment variable name"
                    : env.ContainsKey(secret) ? $"'{secret}' is also in env; a variable is either a value in the workflow or a secret of the worker"
                    : !seen.Add(secret) ? $"'{secret}' is listed twice"
                    : null;
                if (problem is not null)
                {
                    ctx.Add(f.Node("secrets")!, $"{path}.secrets[{si}]", problem);
                }
            }

            var resources = ResourcesSection.Build(f.Map("resources", required: false), path + ".resources", ctx);
            var retries = f.Int("retries", required: false) ?? 0;
            if (retries is < 0 or > 10)
            {
                ctx.Add(f.Node("retries")!, path + ".retries", $"is {retries}; allowed are 0 to 10 extra attempts");
            }

            var outputs = f.StringList("outputs") ?? ["**"];
            foreach (var (glob, gi) in outputs.Select((g, gi) => (g, gi)))
            {
                f.CheckGlob("outputs", gi, glob);
            }

            var reuse = f.Bool("reuse");
            if (name is not null && image is not null && command is { Count: > 0 })
            {
                steps.Add(new StepSpec(name, image, command, env, resources, Math.Clamp(retries, 0, 10), outputs) { Secrets = secrets, Reuse = reuse ?? true, ReuseSaid = reuse is not null });
            }
        }

        return steps;
    }
}
