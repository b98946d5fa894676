using Pipelines.Model;

namespace Pipelines.Containers;

/// <summary>
/// How much an attempt may leave in its writable folders, and where each limit comes from (for
/// the message). The one home of the quota rule: a batch step, a <c>reuse: true</c> request and
/// a function request all get theirs from <see cref="For"/> (through <c>WorkerOptions.LimitsFor</c>),
/// so they hold to one rule with one reason; a warm container carries its own in its
/// <see cref="Warm.WarmSpec.Limits"/>, held by the pool between requests too.
/// </summary>
public sealed record OutputLimits(long MaxBytes, long MaxFiles, string BytesSource, string FilesSource)
{
    /// <summary>Who the limits are for, as a reason names it ("the step", "the function").</summary>
    public string Who { get; init; } = "the step";

    /// <summary>
    /// The quotas of one step's or function's /out: its own <c>resources.disk</c> and
    /// <c>resources.files</c> where they ask for less than the worker allows, else the worker's
    /// <c>Worker:MaxOutputBytes</c> (<paramref name="maxOutputBytes"/>) and <c>Worker:MaxOutputFiles</c>
    /// (<paramref name="maxOutputFiles"/>). <paramref name="kind"/> is "step" or "function", <paramref name="name"/> its name.
    /// </summary>
    public static OutputLimits For(Resources resources, long maxOutputBytes, long maxOutputFiles, string kind, string name)
    {
        var bytes = resources.DiskBytes > 0 && resources.DiskBytes <= maxOutputBytes
            ? (resources.DiskBytes, $"resources.disk of {kind} '{name}' is {Quantities.FormatSize(resources.DiskBytes)}")
            : (maxOutputBytes, $"Worker:MaxOutputBytes is {Quantities.FormatSize(maxOutputBytes)}");
        var files = resources.Files > 0 && resources.Files <= maxOutputFiles
            ? (resources.Files, $"resources.files of {kind} '{name}' is {resources.Files}")
            : (maxOutputFiles, $"Worker:MaxOutputFiles is {maxOutputFiles}");
        return new OutputLimits(bytes.Item1, files.Item1, bytes.Item2, files.Item2) { Who = "the " + kind };
    }
}
