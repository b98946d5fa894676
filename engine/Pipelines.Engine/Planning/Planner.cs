using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;
using Pipelines.Model;
using Pipelines.Storage;

namespace Pipelines.Planning;

/// <summary>
/// Turns a listing (or a sample sheet) into units and tasks with ids. Pure: the caller lists
/// the input and reads the sheet; nothing here knows about Hangfire or Docker.
/// </summary>
internal static class Planner
{
    /// <summary>
    /// The captures of a task without any (no group_by), one instance for all: every task record
    /// holds its captures from the plan on, and an empty dictionary each was 80 bytes a task.
    /// </summary>
    public static IReadOnlyDictionary<string, string> NoCaptures { get; } = System.Collections.ObjectModel.ReadOnlyDictionary<string, string>.Empty;

    public static Plan Plan(Workflow workflow, IReadOnlyList<InputFile> listing, string? samplesheetCsv, IReadOnlyDictionary<string, string> imageDigests)
    {
        List<Unit> units;
        int selected, ungrouped = 0;
        if (workflow.Input.Samplesheet is not null)
        {
            units = UnitsFromSheet(samplesheetCsv ?? "", listing, workflow.Input.Samplesheet);
            selected = units.Sum(u => u.Files.Count);
        }
        else
        {
            var filter = new GlobFilter(workflow.Input.Include, workflow.Input.Exclude);
            var files = listing.Where(f => filter.IsMatch(f.Key)).OrderBy(f => f.Key, StringComparer.Ordinal).ToList();
            selected = files.Count;
            if (workflow.Input.GroupByPattern is not { } groupBy)
            {
                units = files.Select(f => new Unit([f], NoCaptures)).ToList();
            }
            else
            {
                (units, ungrouped) = Group(files, groupBy);
            }
        }

        var tasks = new List<PlannedTask>();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        var batch = workflow.Input.Batch;
        for (var start = 0; start < units.Count; start += batch)
        {
            var chunk = units.Skip(start).Take(batch).ToList();
            var inputs = chunk.SelectMany(u => u.Files).OrderBy(f => f.Key, StringComparer.Ordinal).ToList();
            var captures = batch == 1 ? chunk[0].Captures : NoCaptures;
            CheckSingleInput(workflow, inputs);
            var id = TaskId(workflow, imageDigests, inputs, captures);
            if (ids.TryGetValue(id, out var earlier))
            {
                throw new WorkflowInvalidException("the plan", [new WorkflowProblem("input", $"tasks {earlier} and {tasks.Count} would do the same work on the same inputs ({string.Join(", ", inputs.Select(i => i.Key))}); list each file once", 0, 0)]);
            }

            ids[id] = tasks.Count;
            tasks.Add(new PlannedTask(tasks.Count, id, inputs, captures));
        }

        return new Plan(tasks, listing.Count, selected, ungrouped);
    }

    /// <summary>Whether a plan can be made while the listing streams: no group_by and no sample sheet.</summary>
    public static bool CanStream(Workflow workflow) => workflow.Input.GroupBy is null && workflow.Input.Samplesheet is null;

    /// <summary>
    /// The same tasks as <see cref="Plan"/> for a workflow that <see cref="CanStream"/>, made while
    /// the listing streams: only one batch of inputs is held at a time, so planning a million files
    /// takes bounded memory. The listing must come in ordinal key order, as stores list.
    /// </summary>
    public static async IAsyncEnumerable<PlannedTask> PlanStreamAsync(
        Workflow workflow,
        IAsyncEnumerable<InputFile> listing,
        IReadOnlyDictionary<string, string> imageDigests,
        PlanCounter counter,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!CanStream(workflow))
        {
            throw new InvalidOperationException("group_by and samplesheet plans need the whole listing: use Plan");
        }

        var filter = new GlobFilter(workflow.Input.Include, workflow.Input.Exclude);
        var batch = new List<InputFile>(Math.Min(workflow.Input.Batch, 4096));
        string? previous = null;
        await foreach (var file in listing.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            counter.Listed++;
            if (previous is not null && string.CompareOrdinal(previous, file.Key) >= 0)
            {
                throw new InvalidOperationException($"the listing is not in ordinal key order: '{file.Key}' after '{previous}'");
            }

            previous = file.Key;
            if (!filter.IsMatch(file.Key))
            {
                continue;
            }

            counter.Selected++;
            batch.Add(file);
            if (batch.Count == workflow.Input.Batch)
            {
                yield return Task(batch);
                batch = new List<InputFile>(batch.Count);
            }
        }

        if (batch.Count > 0)
        {
            yield return Task(batch);
        }

        PlannedTask Task(List<InputFile> inputs)
        {
            // Keys are unique and sorted, so no two tasks of a streamed plan can share an id.
            CheckSingleInput(workflow, inputs);
            return new PlannedTask(counter.Tasks++, TaskId(workflow, imageDigests, inputs, NoCaptures), inputs, NoCaptures);
        }
    }

    /// <summary>The steps of a task with placeholders expanded; {task} stays literal when taskId is null.</summary>
    public static IReadOnlyList<ExpandedStep> Expand(Workflow workflow, IReadOnlyDictionary<string, string> imageDigests, IReadOnlyList<InputFile> inputs, IReadOnlyDictionary<string, string> captures, string? taskId)
    {
        var values = new PlaceholderValues(inputs.Select(i => ContainerLayout.InputPath(i.Key)).ToList(), taskId ?? "{task}", captures);
        return workflow.Steps.Select(s => new ExpandedStep(
            s.Name,
            s.Image,
            imageDigests.TryGetValue(s.Image, out var d) ? d : throw new InvalidOperationException($"no digest resolved for image {s.Image}"),
            s.Command.SelectMany(a => Placeholders.ExpandArgument(a, values)).ToList(),
            s.Env.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToDictionary(kv => kv.Key, kv => Placeholders.Expand(kv.Value, values), StringComparer.Ordinal),
            s.Resources,
            s.Retries,
            s.Outputs)
        { Secrets = s.Secrets, Reuse = s.Reuse, ReuseSaid = s.ReuseSaid }).ToList();
    }

    /// <summary>
    /// What determines a task's result, component by component (<see cref="TaskIdentity"/>):
    /// the steps with image digests, expanded commands and env, resources and kept outputs,
    /// the inputs' keys and content tags, and the unit's captures.
    /// </summary>
    public static TaskIdentity Identity(Workflow workflow, IReadOnlyDictionary<string, string> imageDigests, IReadOnlyList<InputFile> inputs, IReadOnlyDictionary<string, string> captures) => new(
        TaskIdentity.CurrentFormat,
        inputs.Select(i => new IdentityInput(i.Key, i.Hash)).ToList(),
        new SortedDictionary<string, string>(captures.ToDictionary(), StringComparer.Ordinal),
        Expand(workflow, imageDigests, inputs, captures, taskId: null)
            .Select(s => new IdentityStep(s.Name, s.Image, s.ImageDigest, s.Command, s.Env, IdentityStep.ResourcesOf(s.Resources), s.Outputs))
            .ToList());

    /// <summary>The task id: the digest of the task's <see cref="Identity"/> (<see cref="TaskIdentity.TaskId"/>).</summary>
    public static string TaskId(Workflow workflow, IReadOnlyDictionary<string, string> imageDigests, IReadOnlyList<InputFile> inputs, IReadOnlyDictionary<string, string> captures) =>
        Identity(workflow, imageDigests, inputs, captures).TaskId;

    private static void CheckSingleInput(Workflow workflow, List<InputFile> inputs)
    {
        if (inputs.Count == 1)
        {
            return;
        }

        for (var i = 0; i < workflow.Steps.Count; i++)
        {
            var step = workflow.Steps[i];
            if (step.Command.Concat(step.Env.Values).Any(t => Placeholders.Scan(t).Names.Contains(Placeholders.Input)))
            {
                throw new WorkflowInvalidException("the plan", [new WorkflowProblem($"steps[{i}].command", $"uses {{input}}, but a task has {inputs.Count} inputs ({string.Join(", ", inputs.Take(3).Select(f => f.Key))}{(inputs.Count > 3 ? ", ..." : "")}); use {{inputs}}", 0, 0)]);
            }
        }
    }

    /// <summary>Units of the files whose keys match group_by, one per value of its captures; the regex is the workflow's, compiled once.</summary>
    private static (List<Unit> Units, int Ungrouped) Group(List<InputFile> files, GroupByPattern pattern)
    {
        var groups = new Dictionary<string, (List<InputFile> Files, Dictionary<string, string> Captures)>(StringComparer.Ordinal);
        var order = new List<string>();
        var ungrouped = 0;
        foreach (var f in files)
        {
            var captures = pattern.Match(f.Key);
            if (captures is null)
            {
                ungrouped++;
                continue;
            }

            var key = string.Join("\0", pattern.Captures.Select(n => captures[n]));
            if (!groups.TryGetValue(key, out var g))
            {
                g = ([], captures);
                groups[key] = g;
                order.Add(key);
            }

            g.Files.Add(f);
        }

        return (order.Select(k => new Unit(groups[k].Files, groups[k].Captures)).ToList(), ungrouped);
    }

    private static List<Unit> UnitsFromSheet(string csv, IReadOnlyList<InputFile> listing, string sheetName)
    {
        var byKey = listing.GroupBy(f => f.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var problems = new List<WorkflowProblem>();
        using var reader = new StringReader(csv);
        var config = new CsvConfiguration(CultureInfo.InvariantCulture) { TrimOptions = TrimOptions.Trim, DetectColumnCountChanges = true };
        using var parser = new CsvReader(reader, config);
        if (!parser.Read() || !parser.ReadHeader() || parser.HeaderRecord is null)
        {
            throw Invalid(sheetName, "is empty; it needs a header row such as sample,fastq_1,fastq_2");
        }

        var header = parser.HeaderRecord;
        if (!header.Contains("sample"))
        {
            throw Invalid(sheetName, $"has no 'sample' column (its columns: {string.Join(", ", header)})");
        }

        var fileColumns = header.Where(h => h != "sample").ToList();
        if (fileColumns.Count == 0)
        {
            throw Invalid(sheetName, "has no file column besides 'sample' (e.g. fastq_1, fastq_2)");
        }

        var units = new List<(string Sample, List<InputFile> Files)>();
        var bySample = new Dictionary<string, int>(StringComparer.Ordinal);
        try
        {
            while (parser.Read())
            {
                var line = parser.Parser.Row;
                var sample = parser.GetField("sample") ?? "";
                if (sample.Length == 0)
                {
                    problems.Add(new WorkflowProblem("input.samplesheet", $"{sheetName}, line {line}: the 'sample' cell is empty", 0, 0));
                    continue;
                }

                var rowFiles = new List<InputFile>();
                foreach (var column in fileColumns)
                {
                    var key = (parser.GetField(column) ?? "").TrimStart('/');
                    if (key.Length == 0)
                    {
                        continue;
                    }

                    if (key.Split('/').Any(s => s is ".." or "."))
                    {
                        problems.Add(new WorkflowProblem("input.samplesheet", $"{sheetName}, line {line}, column {column}: '{key}' leaves input.uri", 0, 0));
                    }
                    else if (!byKey.TryGetValue(key, out var file))
                    {
                        problems.Add(new WorkflowProblem("input.samplesheet", $"{sheetName}, line {line}, column {column}: '{key}' is not under input.uri", 0, 0));
                    }
                    else
                    {
                        rowFiles.Add(file);
                    }
                }

                if (rowFiles.Count == 0)
                {
                    problems.Add(new WorkflowProblem("input.samplesheet", $"{sheetName}, line {line}: sample '{sample}' names no file", 0, 0));
                    continue;
                }

                if (bySample.TryGetValue(sample, out var at))
                {
                    // Rows of one sample (several lanes) form one unit, as nf-core sample sheets do.
                    units[at].Files.AddRange(rowFiles);
                }
                else
                {
                    bySample[sample] = units.Count;
                    units.Add((sample, rowFiles));
                }
            }
        }
        catch (CsvHelperException e)
        {
            throw Invalid(sheetName, $"line {e.Context?.Parser?.Row}: not valid CSV: {e.Message.Split('\n')[0]}");
        }

        if (problems.Count > 0)
        {
            throw new WorkflowInvalidException(sheetName, problems);
        }

        if (units.Count == 0)
        {
            throw Invalid(sheetName, "has a header but no rows");
        }

        return units.Select(u => new Unit(u.Files.Distinct().ToList(), new Dictionary<string, string>(StringComparer.Ordinal) { ["sample"] = u.Sample })).ToList();
    }

    private static WorkflowInvalidException Invalid(string sheet, string message) =>
        new(sheet, [new WorkflowProblem("input.samplesheet", $"{sheet} {message}", 0, 0)]);
}
