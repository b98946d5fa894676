using Microsoft.Extensions.Logging;

namespace Pipelines.Worker;

/// <summary>
/// A task's scratch folder on the worker, taken from the worker's <see cref="TaskFolders"/>:
/// made so that only the engine may enter it (containers see their binds, not the path to
/// them), marked with the owning process, and given back when the task is done, to be emptied
/// without ever following a link, whatever a container left in it, or removed.
/// </summary>
internal sealed partial class Scratch : IDisposable
{
    private readonly TaskFolders _folders;
    private readonly ILogger _log;

    /// <summary>Whether a folder was made in it (an attempt's /out, bound in a container of its own, or a step's outputs kept for the next).</summary>
    private bool _touched;

    private Scratch(string path, TaskFolders folders, ILogger log) => (Path, _folders, _log) = (path, folders, log);

    public string Path { get; }

    /// <summary>The staged inputs, bound read-only at /in. Written only after <see cref="BeginStaging"/>.</summary>
    public string In => TaskFolders.In(Path);

    /// <summary>
    /// in/, to stage the task's inputs into: from now on what it holds is not known (it is read
    /// when the folder is given back, and moved by a listing) until <see cref="Staged"/> says.
    /// </summary>
    public string BeginStaging()
    {
        InNames = null;
        return In;
    }

    /// <summary>The stage-in finished: in/ holds the inputs of these keys, and nothing else.</summary>
    public void Staged(IEnumerable<string> keys) => InNames = TopNames(keys);

    /// <summary>
    /// The names the engine put at the top of <see cref="In"/> (the first path segments of the
    /// staged inputs' keys) and that are there now: empty when it was taken (in/ is empty) and
    /// when they were all moved out; null when it is not known (a stage-in that did not finish,
    /// inputs moved back from a warm container: what is there is then read). Nothing but this
    /// process writes in in/: the folder is private to the engine, and a container of its own
    /// has it bound read-only. Set by <see cref="BeginStaging"/>, <see cref="Staged"/> and
    /// the warm request that moves the inputs out and back (WarmRequest).
    /// </summary>
    public IReadOnlyCollection<string>? InNames { get; set; } = [];

    /// <summary>
    /// Whether the folder is as it was taken: no folder made in it, and in/ known to be empty.
    /// Then it goes back to the pool without the reset's listing (<see cref="FolderPool.Return"/>).
    /// </summary>
    public bool AsTaken => !_touched && InNames is { Count: 0 };

    /// <summary>The names at the top of in/ of a task's input keys (a key "a/b.fastq" puts "a" there).</summary>
    private static HashSet<string> TopNames(IEnumerable<string> keys)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            var slash = key.IndexOf('/', StringComparison.Ordinal);
            names.Add(slash < 0 ? key : key[..slash]);
        }

        return names;
    }

    /// <summary>A new, empty folder for one attempt of one step's /out, writable by the container's user.</summary>
    public string NewOut(string step, int attempt)
    {
        _touched = true;
        var outDir = System.IO.Path.Combine(Path, $"out-{step}-{attempt}");
        Directory.CreateDirectory(outDir);

        // The algorithm runs as a non-root user: /out must be writable by it.
        File.SetUnixFileMode(outDir, (UnixFileMode)0b111_111_111);
        return outDir;
    }

    /// <summary>A folder for one task: only the owner marker and an empty in/ in it.</summary>
    public static Scratch Take(TaskFolders folders, ILogger log) => new(folders.Take(), folders, log);

    /// <summary>The worker's scratch root, made private to the engine if it is not there.</summary>
    public static void PrepareRoot(WorkerOptions options)
    {
        if (!Directory.Exists(options.Scratch))
        {
            Directory.CreateDirectory(options.Scratch, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    public void Dispose()
    {
        // Never through a link, whatever the names: a container made what is in it.
        if (_folders.Return(Path, AsTaken) is { } error)
        {
            LogScratchLeft(_log, Path, error);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "could not delete scratch folder {Path}: {Error}")]
    private static partial void LogScratchLeft(ILogger logger, string path, string error);
}
