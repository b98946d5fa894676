namespace Pipelines.Model;

/// <summary>A validated workflow file, version 1 (see docs/workflow-spec.md).</summary>
public sealed record Workflow(
    int Version,
    string Name,
    string? Description,
    InputSpec Input,
    IReadOnlyList<StepSpec> Steps,
    IReadOnlyList<GatherSpec> Gather,
    OutputSpec Output,
    OnError OnError,
    TriggerSpec? Trigger)
{
    /// <summary>What is accepted but has no effect (e.g. include next to a samplesheet), for the user to see.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IReadOnlyList<WorkflowProblem> Warnings { get; init; } = [];

    /// <summary>
    /// Every location the workflow names, by its field, and whether the workflow writes there: the
    /// one list the rules of where a workflow may read and write (Submit:LocalRoots, a tenant's
    /// folders) go through, so that a location field added later is checked by each of them.
    /// </summary>
    public IReadOnlyList<(string Field, string? Uri, bool Output)> Locations() =>
        [("input.uri", Input.Uri, false), ("input.samplesheet", Input.Samplesheet, false), ("trigger.uri", Trigger?.Uri, false), ("output.uri", Output.Uri, true)];
}

/// <summary>Where the dataset is and how it is split into units and tasks.</summary>
public sealed record InputSpec(
    string Uri,
    IReadOnlyList<string> Include,
    IReadOnlyList<string> Exclude,
    string? GroupBy,
    int Batch,
    string? Samplesheet)
{
    private GroupByPattern? _groupByPattern;

    /// <summary>
    /// <c>batch: auto</c>: the submitter sizes <see cref="Batch"/> from the worker slots, the
    /// files' count and sizes and recorded task times (Planning/AutoBatch), and the run records
    /// the size it chose.
    /// </summary>
    public bool BatchAuto { get; init; }

    /// <summary>
    /// <see cref="GroupBy"/> compiled, for the planner; null without group_by. The parser sets it; a workflow
    /// read back from JSON, which holds only the text, compiles it on first use.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public GroupByPattern? GroupByPattern
    {
        get
        {
            if (GroupBy is null)
            {
                return null;
            }

            // `with { GroupBy = ... }` copies this field too: a pattern of other text is stale.
            var pattern = _groupByPattern;
            if (pattern is null || !string.Equals(pattern.Text, GroupBy, StringComparison.Ordinal))
            {
                pattern = Model.GroupByPattern.Compile(GroupBy);
                _groupByPattern = pattern;
            }

            return pattern;
        }

        init => _groupByPattern = value;
    }
}

/// <summary>One container step of every task.</summary>
public sealed record StepSpec(
    string Name,
    string Image,
    IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string> Env,
    Resources Resources,
    int Retries,
    IReadOnlyList<string> Outputs)
{
    /// <summary>
    /// Names of variables the worker takes from its own configuration (Secrets:NAME) and puts into
    /// the container's environment at run time; only the names are in the workflow and the run.
    /// </summary>
    public IReadOnlyList<string> Secrets { get; init; } = [];

    /// <summary>
    /// Whether the tasks of a run run this step as requests to warm containers of the step
    /// (fork mode, docs/functions.md) instead of a new container each: the default, as a
    /// container start costs 0.1-0.4 s and a request milliseconds (docs/decisions.md);
    /// <c>reuse: false</c> opts out. Not part of a task's identity: the step sees the same
    /// files either way.
    /// </summary>
    public bool Reuse { get; init; } = true;

    /// <summary>
    /// Whether the workflow said <c>reuse</c> itself. A step that asked for reuse fails where the
    /// worker cannot serve warm containers; one that took the default runs a container per
    /// task there, and the worker says so.
    /// </summary>
    public bool ReuseSaid { get; init; }
}

/// <summary>The limits a step's container runs under.</summary>
/// <summary>
/// A step's limits. <see cref="DiskBytes"/> and <see cref="Files"/> bound what the step may
/// leave in /out (0: the worker's limit, Worker:MaxOutputBytes and Worker:MaxOutputFiles).
/// </summary>
public sealed record Resources(double Cpus, long MemoryBytes, TimeSpan Timeout, long Pids, long DiskBytes = 0, long Files = 0)
{
    public static Resources Default { get; } = new(1, 512L * 1024 * 1024, TimeSpan.FromMinutes(10), 256);
}

/// <summary>A table merged from every task's kept outputs after the tasks end.</summary>
public sealed record GatherSpec(
    string Name,
    string FromStep,
    string FromGlob,
    TableFormat Format,
    bool Header,
    IReadOnlyList<string>? Columns,
    IReadOnlyList<ResultFormat> To);

/// <summary>Where a run writes what it leaves.</summary>
public sealed record OutputSpec(string Uri);

/// <summary>Start runs when new objects land (acted on by the trigger role).</summary>
public sealed record TriggerSpec(string Uri, IReadOnlyList<string> Include, TimeSpan Settle);

public enum OnError { Continue, Fail }

public enum TableFormat { Tsv, Csv }

public enum ResultFormat { Parquet, Csv }
