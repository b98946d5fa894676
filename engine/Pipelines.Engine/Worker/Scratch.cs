using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Storage;

namespace Pipelines.Worker;

/// <summary>
/// A task's scratch folder on the worker: made so that only the engine may enter it
/// (containers see their binds, not the path to them), marked with the owning process, and
/// deleted without ever following a link, whatever a container left in it.
/// </summary>
internal sealed partial class Scratch : IDisposable
{
    private readonly ILogger _log;

    private Scratch(string path, ILogger log) => (Path, _log) = (path, log);

    public string Path { get; }

    /// <summary>The staged inputs, bound read-only at /in.</summary>
    public string In => System.IO.Path.Combine(Path, "in");

    /// <summary>A new, empty folder for one attempt of one step's /out, writable by the container's user.</summary>
    public string NewOut(string step, int attempt)
    {
        var outDir = System.IO.Path.Combine(Path, $"out-{step}-{attempt}");
        Directory.CreateDirectory(outDir);

        // The algorithm runs as a non-root user: /out must be writable by it.
        File.SetUnixFileMode(outDir, (UnixFileMode)0b111_111_111);
        return outDir;
    }

    public static Scratch Create(WorkerOptions options, string runId, int index, ILogger log)
    {
        PrepareRoot(options);
        var path = System.IO.Path.Combine(options.Scratch, $"{runId}-{index}-{Guid.NewGuid():N}"[..^20]);
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        ProcessOwner.Mark(path);
        var scratch = new Scratch(path, log);
        Directory.CreateDirectory(scratch.In);
        return scratch;
    }

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
        try
        {
            // Never through a link, whatever the names: a container made this tree.
            NoFollow.DeleteTree(Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PipelinesException)
        {
            LogScratchLeft(_log, Path, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "could not delete scratch folder {Path}: {Error}")]
    private static partial void LogScratchLeft(ILogger logger, string path, string error);
}
