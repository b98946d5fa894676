using System.Collections.Concurrent;
using Pipelines.Storage;
using Pipelines.Worker;

namespace Pipelines.Functions;

/// <summary>
/// The scratch folders of synchronous function requests (in/ for the body, out/ for the answer),
/// made once and emptied in place when a request is done, never following a link, so that the
/// next request finds them empty: making and removing three folders per request was about a
/// fifth of the server's busy time under load (docs/benchmarks.md). They are the server's own:
/// no container sees them (a fork request's input is moved into its container's folder, and
/// its output copied out of it). A folder that cannot be emptied is removed whole and not used
/// again; at most <see cref="Kept"/> idle ones are kept.
/// </summary>
public sealed class RequestFolders(WorkerOptions worker)
{
    /// <summary>How many idle folders are kept: more than a server serves at once on a small machine.</summary>
    public const int Kept = 64;

    private readonly ConcurrentBag<string> _idle = [];
    private int _count;

    /// <summary>A folder whose in/ and out/ exist and are empty.</summary>
    public string Take()
    {
        if (_idle.TryTake(out var folder))
        {
            Interlocked.Decrement(ref _count);
            return folder;
        }

        folder = Path.Combine(worker.Scratch, "functions", "requests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(In(folder));
        Directory.CreateDirectory(Out(folder));
        return folder;
    }

    /// <summary>Empties a folder for the next request, or removes it.</summary>
    public void Return(string folder)
    {
        try
        {
            NoFollow.EmptyFolder(In(folder));
            NoFollow.EmptyFolder(Out(folder));
            if (Interlocked.Increment(ref _count) <= Kept)
            {
                _idle.Add(folder);
                return;
            }

            Interlocked.Decrement(ref _count);
        }
        catch (Exception e) when (e is PipelinesException or IOException or UnauthorizedAccessException)
        {
            // Not emptied: removed whole below, and never used again.
        }

        try
        {
            NoFollow.DeleteTree(folder);
        }
        catch (Exception e) when (e is PipelinesException or IOException or UnauthorizedAccessException)
        {
            // The request has been answered; what could not be removed stays out of the pool.
        }
    }

    public static string In(string folder) => Path.Combine(folder, "in");

    public static string Out(string folder) => Path.Combine(folder, "out");
}
