using Pipelines.Storage;
using Pipelines.Worker;

namespace Pipelines.Functions;

/// <summary>
/// The scratch folders of synchronous function requests (in/ for the body, out/ for the answer),
/// made once and emptied in place when a request is done, never following a link, so that the
/// next request finds them empty: making and removing three folders per request was about a
/// fifth of the server's busy time under load (docs/benchmarks.md). They are the server's own:
/// no container sees them (a fork request's input is moved into its container's folder, and
/// its output copied out of it). A <see cref="FolderPool"/>: a folder that cannot be emptied is
/// removed whole and not used again; at most <see cref="Kept"/> idle ones are kept, and they
/// are removed when the server stops.
/// </summary>
public sealed class RequestFolders(WorkerOptions worker) : IDisposable
{
    /// <summary>How many idle folders are kept: more than a server serves at once on a small machine.</summary>
    public const int Kept = 64;

    private readonly FolderPool _pool = new(Kept, () => Make(worker), Empty);

    /// <summary>A folder whose in/ and out/ exist and are empty.</summary>
    public string Take() => _pool.Take();

    /// <summary>
    /// Empties a folder for the next request, or removes it. One the request wrote nothing in
    /// (<paramref name="untouched"/>: its body and its answer were held in memory, and no container
    /// sees these folders) is kept as it is: emptying two empty folders was most of a small fork
    /// request's file work (docs/benchmarks.md).
    /// </summary>
    public void Return(string folder, bool untouched = false) => _pool.Return(folder, untouched);

    public void Dispose() => _pool.Dispose();

    public static string In(string folder) => Path.Combine(folder, "in");

    public static string Out(string folder) => Path.Combine(folder, "out");

    private static string Make(WorkerOptions worker)
    {
        var folder = Path.Combine(worker.Scratch, "functions", "requests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(In(folder));
        Directory.CreateDirectory(Out(folder));
        return folder;
    }

    private static bool Empty(string folder)
    {
        NoFollow.EmptyFolder(In(folder));
        NoFollow.EmptyFolder(Out(folder));
        return true;
    }
}
