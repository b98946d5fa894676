using Pipelines.Model;

namespace Pipelines.Planning;

/// <summary>One input file of a task: its key relative to input.uri, size and content tag (ETag or sha256).</summary>
public sealed record InputFile(string Key, long Size, string Hash);

/// <summary>The files that are processed together (one file, a read pair, a sample sheet row).</summary>
internal sealed record Unit(IReadOnlyList<InputFile> Files, IReadOnlyDictionary<string, string> Captures);

/// <summary>A task: units batched together, with the id that names its work.</summary>
public sealed record PlannedTask(int Index, string TaskId, IReadOnlyList<InputFile> Inputs, IReadOnlyDictionary<string, string> Captures);

/// <summary>A step with its placeholders expanded for one task.</summary>
internal sealed record ExpandedStep(
    string Name,
    string Image,
    string ImageDigest,
    IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string> Env,
    Resources Resources,
    int Retries,
    IReadOnlyList<string> Outputs)
{
    /// <summary>The names of the worker's secrets the step's container gets (never their values).</summary>
    public IReadOnlyList<string> Secrets { get; init; } = [];

    /// <summary>Whether the step runs in warm containers of its run (<see cref="Model.StepSpec.Reuse"/>).</summary>
    public bool Reuse { get; init; } = true;

    /// <summary>Whether the workflow said reuse itself (<see cref="Model.StepSpec.ReuseSaid"/>).</summary>
    public bool ReuseSaid { get; init; }
}

/// <summary>The outcome of planning: the tasks, and what was left out and why.</summary>
internal sealed record Plan(IReadOnlyList<PlannedTask> Tasks, int FilesListed, int FilesSelected, int FilesUngrouped);

/// <summary>What a streamed plan has seen so far: files listed and selected, tasks made.</summary>
public sealed class PlanCounter
{
    public int Listed { get; set; }

    public int Selected { get; set; }

    public int Tasks { get; set; }
}
