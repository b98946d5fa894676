using Pipelines.Containers.Warm;
using Pipelines.Model;
using YamlDotNet.RepresentationModel;

namespace Pipelines.Functions;

/// <summary>
/// Reads a function file into a <see cref="FunctionSpec"/>, collecting every problem with its
/// line, column and field, as <see cref="WorkflowParser"/> does for workflows.
/// </summary>
public static class FunctionParser
{
    private const long MaxRequestLimit = 5L * 1024 * 1024 * 1024;

    /// <summary>Parses and validates; throws <see cref="FunctionInvalidException"/> with every problem.</summary>
    public static FunctionSpec Parse(string yaml, string source)
    {
        var ctx = new ParseContext();
        var root = YamlLoader.Load(yaml, ctx, YamlLoader.Function);
        var spec = root is null ? null : Build(root, ctx);
        if (ctx.Problems.Count > 0 || spec is null)
        {
            throw new FunctionInvalidException(source, ctx.Problems.OrderBy(p => p.Line).ThenBy(p => p.Column).ToList());
        }

        return spec;
    }

    private static FunctionSpec? Build(YamlMappingNode root, ParseContext ctx)
    {
        var f = new YamlFields(root, "", ctx);
        f.Known("name", "description", "image", "mode", "command", "env", "secrets", "resources", "concurrency",
            "min_warm", "max", "queue", "idle_timeout", "max_request_size", "output", "content_type");

        var name = f.String("name", required: true);
        if (name is not null && !NamePatterns.Workflow().IsMatch(name))
        {
            ctx.Add(f.Node("name")!, "name", $"'{name}' is not a function name: use lower-case letters, digits and '-', starting with a letter or digit, at most 63 characters");
        }

        var description = f.String("description", required: false);
        var image = f.String("image", required: true);
        if (image is not null && image.Any(char.IsWhiteSpace))
        {
            ctx.Add(f.Node("image")!, "image", $"'{image}' is not an image reference");
        }

        var mode = WarmMode.Fork;
        switch (f.String("mode", required: false))
        {
            case null or "fork": break;
            case "http": mode = WarmMode.Http; break;
            case var other: ctx.Add(f.Node("mode")!, "mode", $"'{other}' is not a mode; write 'fork' (the default: the command runs once per request) or 'http' (the image serves HTTP on {WarmLayout.HttpSocket})"); break;
        }

        var command = f.StringList("command");
        if (mode == WarmMode.Fork && command is null && f.Node("command") is null)
        {
            ctx.Add(root, "command", "is missing; write the program run for each request and its arguments as a list, e.g. [\"thumbnail\", \"{input}\", \"/out/thumb.png\"]");
        }
        else if (command is { Count: 0 })
        {
            ctx.Add(f.Node("command")!, "command", "is empty; name the program to run");
        }

        CheckPlaceholders(command, mode, f.Node("command") as YamlSequenceNode, ctx);

        var env = f.StringMap("env") ?? new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var key in env.Keys.Where(k => !NamePatterns.EnvVariable().IsMatch(k)))
        {
            ctx.Add(f.Node("env")!, "env." + key, "is not a valid environment variable name");
        }

        var secrets = f.StringList("secrets") ?? [];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (secret, i) in secrets.Select((s, i) => (s, i)))
        {
            var problem = !NamePatterns.EnvVariable().IsMatch(secret) ? $"'{secret}' is not a valid environment variable name"
                : env.ContainsKey(secret) ? $"'{secret}' is also in env; a variable is either a value in the file or a secret of the server"
                : !seen.Add(secret) ? $"'{secret}' is listed twice"
                : null;
            if (problem is not null)
            {
                ctx.Add(((YamlSequenceNode)f.Node("secrets")!).Children[i], $"secrets[{i}]", problem);
            }
        }

        var resourcesNode = f.Map("resources", required: false);
        var resources = ResourcesSection.Build(resourcesNode, "resources", ctx);
        if (resourcesNode is null || YamlFields.Child(resourcesNode, "timeout") is null)
        {
            // A request is not a batch task: 30 s, not the 10 minutes of a step.
            resources = resources with { Timeout = TimeSpan.FromSeconds(30) };
        }

        var concurrency = Count(f, "concurrency", 1, 1, 1024, ctx);
        if (mode == WarmMode.Fork && concurrency != 1)
        {
            ctx.Add(f.Node("concurrency")!, "concurrency", $"is {concurrency}; a fork-mode container serves one request at a time (more come from more containers: raise max)");
        }

        var minWarm = Count(f, "min_warm", 0, 0, 1024, ctx);
        var max = Count(f, "max", 4, 1, 1024, ctx);
        if (minWarm > max)
        {
            ctx.Add(f.Node("min_warm")!, "min_warm", $"is {minWarm}, more than max ({max})");
        }

        var queue = Count(f, "queue", 100, 0, 100_000, ctx);

        var idle = TimeSpan.FromMinutes(5);
        var idleText = f.String("idle_timeout", required: false);
        if (idleText is not null && (!Quantities.TryParseDuration(idleText, out idle) || idle <= TimeSpan.Zero))
        {
            ctx.Add(f.Node("idle_timeout")!, "idle_timeout", $"'{idleText}' is not a duration (e.g. 30s, 5m, 1h)");
            idle = TimeSpan.FromMinutes(5);
        }

        var maxRequest = FunctionSpec.DefaultMaxRequestBytes;
        var maxText = f.String("max_request_size", required: false);
        if (maxText is not null)
        {
            if (!Quantities.TryParseSize(maxText, out maxRequest) || maxRequest <= 0)
            {
                ctx.Add(f.Node("max_request_size")!, "max_request_size", $"'{maxText}' is not a size (e.g. 512Ki, 10Mi, 1Gi)");
            }
            else if (maxRequest > MaxRequestLimit)
            {
                ctx.Add(f.Node("max_request_size")!, "max_request_size", $"'{maxText}' is more than the {Quantities.FormatSize(MaxRequestLimit)} a request may carry; send larger inputs through a bucket and a workflow");
            }
        }

        var output = f.String("output", required: false);
        if (output is not null)
        {
            if (mode == WarmMode.Http)
            {
                ctx.Add(f.Node("output")!, "output", "is for fork mode; in http mode the server's response is the output");
            }
            else if (OutputProblem(output) is { } problem)
            {
                ctx.Add(f.Node("output")!, "output", problem);
            }
        }

        var contentType = f.String("content_type", required: false);
        if (contentType is not null)
        {
            if (mode == WarmMode.Http)
            {
                ctx.Add(f.Node("content_type")!, "content_type", "is for fork mode; in http mode the server's response says its content type");
            }
            else if (!System.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out _))
            {
                ctx.Add(f.Node("content_type")!, "content_type", $"'{contentType}' is not a media type (e.g. image/png, text/plain; charset=utf-8)");
            }
        }

        if (name is null || image is null || ctx.Problems.Count > 0)
        {
            return null;
        }

        return new FunctionSpec(name, description, image, mode, command ?? [], env, secrets, resources,
            mode == WarmMode.Fork ? 1 : concurrency, minWarm, max, queue, idle, maxRequest, output, contentType);
    }

    /// <summary>Why a path cannot name the output file under /out, or null.</summary>
    private static string? OutputProblem(string output)
    {
        var path = output.StartsWith(ContainerLayout.Out + "/", StringComparison.Ordinal) ? output[(ContainerLayout.Out.Length + 1)..] : output;
        if (path.StartsWith('/'))
        {
            return $"'{output}' is outside /out; name a file the command leaves in /out, e.g. result.png";
        }

        return Storage.KeyNames.Problem(path) is { } p ? $"'{output}' {p}" : null;
    }

    private static void CheckPlaceholders(List<string>? command, WarmMode mode, YamlSequenceNode? node, ParseContext ctx)
    {
        if (command is null || node is null)
        {
            return;
        }

        for (var i = 0; i < command.Count; i++)
        {
            var (names, error) = Placeholders.Scan(command[i]);
            if (error is not null)
            {
                ctx.Add(node.Children[i], $"command[{i}]", error);
                continue;
            }

            foreach (var n in names)
            {
                if (mode == WarmMode.Http)
                {
                    ctx.Add(node.Children[i], $"command[{i}]", $"{{{n}}} has no value: an http-mode command starts the server once, before any request (write '{{{{' for a literal brace)");
                }
                else if (n is not (Placeholders.Input or Placeholders.Inputs or Placeholders.Out))
                {
                    ctx.Add(node.Children[i], $"command[{i}]", $"{{{n}}} is not a placeholder of a function; use {{input}} (the one input file), {{inputs}} (every input file) or {{out}}");
                }
            }
        }
    }

    private static int Count(YamlFields f, string field, int fallback, int min, int max, ParseContext ctx)
    {
        var value = f.Int(field, required: false);
        if (value is null)
        {
            return fallback;
        }

        if (value < min || value > max)
        {
            ctx.Add(f.Node(field)!, field, $"is {value}; allowed are {min} to {max}");
            return fallback;
        }

        return value.Value;
    }
}
