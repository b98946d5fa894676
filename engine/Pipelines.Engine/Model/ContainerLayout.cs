namespace Pipelines.Model;

/// <summary>
/// Where a task's files are inside its container: the contract of docs/workflow-spec.md
/// ("Inside a task's container"), in one place for the placeholders, the planner, the worker's
/// mounts and the runtime.
/// </summary>
internal static class ContainerLayout
{
    /// <summary>The task's inputs, read-only, under their keys relative to input.uri.</summary>
    public const string In = "/in";

    /// <summary>Where a step writes what it produces; also its working folder.</summary>
    public const string Out = "/out";

    /// <summary>The kept outputs of earlier steps of the task, read-only, one folder per step.</summary>
    public const string Steps = "/steps";

    /// <summary>A small tmpfs, discarded with the container.</summary>
    public const string Tmp = "/tmp";

    /// <summary>The path of an input inside the container.</summary>
    public static string InputPath(string key) => In + "/" + key;

    /// <summary>The folder of an earlier step's kept outputs inside the container.</summary>
    public static string StepFolder(string step) => Steps + "/" + step;
}
