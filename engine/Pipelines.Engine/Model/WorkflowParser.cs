using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>
/// Reads a workflow file into a <see cref="Workflow"/>, collecting every problem with its line,
/// column and field path before anything runs. Touches no I/O beyond the text it is given.
/// </summary>
public static partial class WorkflowParser
{
    /// <summary>Parses and validates; throws <see cref="WorkflowInvalidException"/> with every problem.</summary>
    /// <param name="yaml">The file's text.</param>
    /// <param name="source">How to name the file in messages.</param>
    /// <param name="baseDirectory">Folder that relative local paths are resolved against, or null when there is none (API submissions).</param>
    /// <param name="overrides">`key.path=value` pairs applied before validation (the CLI's --set).</param>
    public static Workflow Parse(string yaml, string source, string? baseDirectory, IReadOnlyList<string>? overrides = null)
    {
        var ctx = new Context();
        var root = Load(yaml, ctx);
        if (root is not null && overrides is not null)
        {
            foreach (var o in overrides)
            {
                ApplyOverride(root, o, ctx);
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

    private static YamlMappingNode? Load(string yaml, Context ctx)
    {
        var stream = new YamlStream();
        var scanner = new Scanner(new StringReader(yaml));
        try
        {
            stream.Load(new Parser(scanner));
        }
        catch (YamlException e)
        {
            var inner = e.InnerException?.Message;
            ctx.Problems.Add(new WorkflowProblem("(file)", "not valid YAML: " + (inner ?? e.Message), (int)e.Start.Line, (int)e.Start.Column));
            return null;
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet throws this instead of a YamlException on some broken files, e.g. a
            // flow list `[a, b` left open across lines; the scanner still knows where it stopped.
            var at = scanner.CurrentPosition;
            ctx.Problems.Add(new WorkflowProblem("(file)", "not valid YAML: the text cannot be read from here on; look above for an unclosed '[', '{' or quote", (int)at.Line, (int)at.Column));
            return null;
        }

        if (stream.Documents.Count == 0)
        {
            ctx.Problems.Add(new WorkflowProblem("(file)", "the file is empty; a workflow starts with 'version: 1'", 0, 0));
            return null;
        }

        if (stream.Documents.Count > 1)
        {
            var second = stream.Documents[1].RootNode;
            ctx.Add(second, "(file)", "holds more than one YAML document; put one workflow in each file");
        }

        if (stream.Documents[0].RootNode is not YamlMappingNode map)
        {
            ctx.Add(stream.Documents[0].RootNode, "(file)", "must be a mapping of fields (version, name, input, steps, ...)");
            return null;
        }

        return map;
    }

    private static void ApplyOverride(YamlMappingNode root, string assignment, Context ctx)
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
            var s = new YamlStream();
            s.Load(new StringReader(valueText.Length == 0 ? "''" : valueText));
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

    private static void MarkOverride(YamlNode node, Context ctx, string origin)
    {
        ctx.Overridden[node] = origin;
        foreach (var child in node.AllNodes)
        {
            ctx.Overridden[child] = origin;
        }
    }

    private static Workflow? Build(YamlMappingNode root, Context ctx, string? baseDir)
    {
        var f = new Fields(root, "", ctx);
        f.Known("version", "name", "description", "input", "steps", "gather", "output", "on_error", "trigger");

        var version = f.Int("version", required: true);
        if (version is not null && version != 1)
        {
            ctx.Add(f.Node("version")!, "version", $"is {version}; this engine reads version 1");
        }

        var name = f.String("name", required: true);
        if (name is not null && !NamePattern().IsMatch(name))
        {
            ctx.Add(f.Node("name")!, "name", $"'{name}' is not a workflow name: use lower-case letters, digits and '-', starting with a letter or digit, at most 63 characters");
        }

        var description = f.String("description", required: false);
        var input = BuildInput(f.Map("input", required: true), ctx, baseDir);
        var steps = BuildSteps(f.Seq("steps", required: true), ctx);
        var gather = BuildGather(f.Seq("gather", required: false), ctx, steps);
        var output = BuildOutput(f.Map("output", required: true), ctx, baseDir);
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

        var trigger = BuildTrigger(f.Map("trigger", required: false), ctx, baseDir);

        if (input is not null && steps is not null)
        {
            CheckPlaceholders(input, steps, ctx, f.Seq("steps", required: false));
        }

        if (version is null || name is null || input is null || steps is null || output is null || ctx.Problems.Count > 0)
        {
            return null;
        }

        return new Workflow(1, name, description, input, steps, gather ?? [], output, onError, trigger);
    }

    private static InputSpec? BuildInput(YamlMappingNode? node, Context ctx, string? baseDir)
    {
        if (node is null)
        {
            return null;
        }

        var f = new Fields(node, "input", ctx);
        f.Known("uri", "include", "exclude", "group_by", "batch", "samplesheet");
        var uri = ResolveUri(f, "uri", required: true, baseDir, ctx);
        var include = f.StringList("include") ?? ["**"];
        var exclude = f.StringList("exclude") ?? [];
        foreach (var (glob, i) in include.Select((g, i) => (g, i)))
        {
            CheckGlob(f, "include", i, glob, ctx);
        }

        foreach (var (glob, i) in exclude.Select((g, i) => (g, i)))
        {
            CheckGlob(f, "exclude", i, glob, ctx);
        }

        var groupBy = f.String("group_by", required: false);
        if (groupBy is not null)
        {
            try
            {
                var regex = new Regex(groupBy, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
                if (!regex.GetGroupNames().Any(n => !int.TryParse(n, out _)))
                {
                    ctx.Add(f.Node("group_by")!, "input.group_by", "has no named capture; files are grouped by named captures such as (?<sample>[^/]+)");
                }
            }
            catch (ArgumentException e)
            {
                ctx.Add(f.Node("group_by")!, "input.group_by", "is not a valid .NET regular expression: " + e.Message);
            }
        }

        var batch = f.Int("batch", required: false) ?? 1;
        if (batch < 1)
        {
            ctx.Add(f.Node("batch")!, "input.batch", $"is {batch}; a task holds at least 1 unit");
        }

        string? samplesheet = null;
        if (f.Node("samplesheet") is not null)
        {
            samplesheet = ResolveUri(f, "samplesheet", required: true, baseDir, ctx);
            if (groupBy is not null)
            {
                ctx.Warn(f.Node("group_by")!, "input.group_by", "is ignored: input.samplesheet says which files form a unit");
            }

            if (f.Node("include") is not null || f.Node("exclude") is not null)
            {
                ctx.Warn(f.Node(f.Node("include") is not null ? "include" : "exclude")!, "input.include/exclude", "are ignored: input.samplesheet lists the files");
            }
        }

        return uri is null ? null : new InputSpec(uri, include, exclude, groupBy, Math.Max(batch, 1), samplesheet);
    }

    private static void CheckGlob(Fields f, string field, int index, string glob, Context ctx)
    {
        var error = Planning.Glob.Check(glob);
        if (error is not null)
        {
            var seq = f.Node(field) as YamlSequenceNode;
            ctx.Add(seq?.Children[index] ?? f.Node(field)!, $"{f.Path}.{field}[{index}]", error);
        }
    }

    private static List<StepSpec>? BuildSteps(YamlSequenceNode? node, Context ctx)
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

            var f = new Fields(map, path, ctx);
            f.Known("name", "image", "command", "env", "secrets", "resources", "retries", "outputs");
            var name = f.String("name", required: true);
            if (name is not null && !StepNamePattern().IsMatch(name))
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
            foreach (var key in env.Keys.Where(k => !EnvNamePattern().IsMatch(k)))
            {
                ctx.Add(f.Node("env")!, $"{path}.env.{key}", "is not a valid environment variable name");
            }

            var secrets = f.StringList("secrets") ?? [];
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (secret, si) in secrets.Select((s, si) => (s, si)))
            {
                var problem = !EnvNamePattern().IsMatch(secret) ? $"'{secret}' is not a valid environment variable name"
                    : env.ContainsKey(secret) ? $"'{secret}' is also in env; a variable is either a value in the workflow or a secret of the worker"
                    : !seen.Add(secret) ? $"'{secret}' is listed twice"
                    : null;
                if (problem is not null)
                {
                    ctx.Add(f.Node("secrets")!, $"{path}.secrets[{si}]", problem);
                }
            }

            var resources = BuildResources(f.Map("resources", required: false), path + ".resources", ctx);
            var retries = f.Int("retries", required: false) ?? 0;
            if (retries is < 0 or > 10)
            {
                ctx.Add(f.Node("retries")!, path + ".retries", $"is {retries}; allowed are 0 to 10 extra attempts");
            }

            var outputs = f.StringList("outputs") ?? ["**"];
            foreach (var (glob, gi) in outputs.Select((g, gi) => (g, gi)))
            {
                CheckGlob(f, "outputs", gi, glob, ctx);
            }

            if (name is not null && image is not null && command is { Count: > 0 })
            {
                steps.Add(new StepSpec(name, image, command, env, resources, Math.Clamp(retries, 0, 10), outputs) { Secrets = secrets });
            }
        }

        return steps;
    }

    private static Resources BuildResources(YamlMappingNode? node, string path, Context ctx)
    {
        var r = Resources.Default;
        if (node is null)
        {
            return r;
        }

        var f = new Fields(node, path, ctx);
        f.Known("cpus", "memory", "timeout", "pids", "disk", "files");
        var cpusText = f.String("cpus", required: false);
        var cpus = r.Cpus;
        if (cpusText is not null)
        {
            if (!double.TryParse(cpusText, NumberStyles.Float, CultureInfo.InvariantCulture, out cpus) || cpus <= 0 || cpus > 1024)
            {
                ctx.Add(f.Node("cpus")!, path + ".cpus", $"'{cpusText}' is not a number of CPUs (e.g. 1, 0.5, 2)");
                cpus = r.Cpus;
            }
        }

        var memory = r.MemoryBytes;
        var memText = f.String("memory", required: false);
        if (memText is not null)
        {
            if (!Quantities.TryParseSize(memText, out memory))
            {
                ctx.Add(f.Node("memory")!, path + ".memory", $"'{memText}' is not a size (e.g. 512Mi, 2Gi, 1G)");
                memory = r.MemoryBytes;
            }
            else if (memory < 6 * 1024 * 1024)
            {
                ctx.Add(f.Node("memory")!, path + ".memory", $"'{memText}' is below the 6Mi that a container needs at least");
            }
        }

        var timeout = r.Timeout;
        var timeoutText = f.String("timeout", required: false);
        if (timeoutText is not null)
        {
            if (!Quantities.TryParseDuration(timeoutText, out timeout) || timeout <= TimeSpan.Zero)
            {
                ctx.Add(f.Node("timeout")!, path + ".timeout", $"'{timeoutText}' is not a duration (e.g. 30s, 10m, 1h30m)");
                timeout = r.Timeout;
            }
        }

        var pids = f.Int("pids", required: false) ?? (int)r.Pids;
        if (pids < 1)
        {
            ctx.Add(f.Node("pids")!, path + ".pids", $"is {pids}; a container needs at least 1 process");
        }

        long disk = 0;
        var diskText = f.String("disk", required: false);
        if (diskText is not null && (!Quantities.TryParseSize(diskText, out disk) || disk <= 0))
        {
            ctx.Add(f.Node("disk")!, path + ".disk", $"'{diskText}' is not a size (e.g. 100Mi, 10Gi): the bytes the step may leave in /out");
            disk = 0;
        }

        var files = f.Int("files", required: false) ?? 0;
        if (files < 0 || f.Node("files") is not null && files == 0)
        {
            ctx.Add(f.Node("files")!, path + ".files", $"is {files}; the number of files a step may leave in /out is at least 1");
            files = 0;
        }

        return new Resources(cpus, memory, timeout, Math.Max(pids, 1), disk, files);
    }

    private static List<GatherSpec>? BuildGather(YamlSequenceNode? node, Context ctx, IReadOnlyList<StepSpec>? steps)
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

            var f = new Fields(map, path, ctx);
            f.Known("name", "from", "format", "header", "columns", "to");
            var name = f.String("name", required: true);
            if (name is not null && !StepNamePattern().IsMatch(name))
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

                    var globError = Planning.Glob.Check(fromGlob);
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

    private static OutputSpec? BuildOutput(YamlMappingNode? node, Context ctx, string? baseDir)
    {
        if (node is null)
        {
            return null;
        }

        var f = new Fields(node, "output", ctx);
        f.Known("uri");
        var uri = ResolveUri(f, "uri", required: true, baseDir, ctx);
        return uri is null ? null : new OutputSpec(uri);
    }

    private static TriggerSpec? BuildTrigger(YamlMappingNode? node, Context ctx, string? baseDir)
    {
        if (node is null)
        {
            return null;
        }

        var f = new Fields(node, "trigger", ctx);
        f.Known("uri", "include", "settle");
        var uri = ResolveUri(f, "uri", required: true, baseDir, ctx);
        var include = f.StringList("include") ?? ["**"];
        foreach (var (glob, i) in include.Select((g, i) => (g, i)))
        {
            CheckGlob(f, "include", i, glob, ctx);
        }

        var settle = TimeSpan.FromSeconds(30);
        var settleText = f.String("settle", required: false);
        if (settleText is not null && !Quantities.TryParseDuration(settleText, out settle))
        {
            ctx.Add(f.Node("settle")!, "trigger.settle", $"'{settleText}' is not a duration (e.g. 30s, 5m)");
        }

        return uri is null ? null : new TriggerSpec(uri, include, settle);
    }

    private static string? ResolveUri(Fields f, string field, bool required, string? baseDir, Context ctx)
    {
        var text = f.String(field, required);
        if (text is null)
        {
            return null;
        }

        var path = $"{f.Path}.{field}";
        var node = f.Node(field)!;
        if (text.Length == 0)
        {
            ctx.Add(node, path, "is empty");
            return null;
        }

        if (text.StartsWith("s3://", StringComparison.Ordinal))
        {
            var rest = text["s3://".Length..];
            var bucket = rest.Split('/')[0];
            if (!BucketPattern().IsMatch(bucket))
            {
                ctx.Add(node, path, $"'{text}' does not name a bucket: write s3://bucket/prefix/");
                return null;
            }

            if (rest.Split('/').Skip(1).Any(s => s is ".." or "."))
            {
                ctx.Add(node, path, $"'{text}' has '.' or '..' in its key prefix");
                return null;
            }

            return text;
        }

        if (text.Contains("://", StringComparison.Ordinal) && !text.StartsWith("file://", StringComparison.Ordinal))
        {
            ctx.Add(node, path, $"'{text}' has an unsupported scheme; use s3://bucket/prefix, file:///abs/path, /abs/path or a path relative to the workflow file");
            return null;
        }

        var local = text.StartsWith("file://", StringComparison.Ordinal) ? text["file://".Length..] : text;
        if (Path.IsPathRooted(local))
        {
            return Path.GetFullPath(local);
        }

        if (baseDir is null)
        {
            ctx.Add(node, path, $"'{text}' is a relative path, but this workflow was not read from a file; use an absolute path or s3://");
            return null;
        }

        return Path.GetFullPath(Path.Combine(baseDir, local));
    }

    private static void CheckPlaceholders(InputSpec input, IReadOnlyList<StepSpec> steps, Context ctx, YamlSequenceNode? stepsNode)
    {
        var captures = new HashSet<string>(StringComparer.Ordinal);
        if (input.GroupBy is not null && input.Samplesheet is null)
        {
            try
            {
                foreach (var n in new Regex(input.GroupBy).GetGroupNames().Where(n => !int.TryParse(n, out _)))
                {
                    captures.Add(n);
                }
            }
            catch (ArgumentException)
            {
                // Already reported by BuildInput.
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
            var commandNode = stepNode is null ? null : Child(stepNode, "command") as YamlSequenceNode;
            var envNode = stepNode is null ? null : Child(stepNode, "env");
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

    private static YamlNode? Child(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,62}$")]
    private static partial Regex StepNamePattern();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex EnvNamePattern();

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]{1,62}$")]
    private static partial Regex BucketPattern();

    [GeneratedRegex(@"[^.\[\]]+|\[\d+\]")]
    private static partial Regex OverrideSegment();

    /// <summary>A whole override path: a field, then .field or [index] parts; no empty part (a..b), no sign ([-1]).</summary>
    [GeneratedRegex(@"^[^.\[\]]+(?:\.[^.\[\]]+|\[\d+\])*$")]
    private static partial Regex OverridePath();

    private sealed class Context
    {
        public List<WorkflowProblem> Problems { get; } = [];

        public List<WorkflowProblem> Warnings { get; } = [];

        public void Warn(YamlNode node, string path, string message) =>
            Warnings.Add(new WorkflowProblem(path, message, (int)node.Start.Line, (int)node.Start.Column));

        public Dictionary<YamlNode, string> Overridden { get; } = new(ReferenceEqualityComparer.Instance);

        public void Add(YamlNode node, string path, string message)
        {
            if (Overridden.TryGetValue(node, out var origin))
            {
                Problems.Add(new WorkflowProblem(path, $"{message} (from {origin})", 0, 0));
                return;
            }

            Problems.Add(new WorkflowProblem(path, message, (int)node.Start.Line, (int)node.Start.Column));
        }
    }

    /// <summary>Typed access to the fields of one mapping, reporting wrong shapes at their nodes.</summary>
    private sealed class Fields(YamlMappingNode map, string path, Context ctx)
    {
        public string Path { get; } = path;

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
}
