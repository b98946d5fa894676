using System.Text;
using Pipelines.Containers;
using Pipelines.Storage;

namespace Pipelines.Worker;

/// <summary>
/// The tasks' scratch folders on this worker (<see cref="Scratch"/>), used again by later tasks
/// (a <see cref="FolderPool"/> of at most <see cref="Kept"/> idle ones, removed when the worker
/// stops). A folder is made private to the engine, marked with its owner (so that
/// <see cref="LeftoverCleaner"/> removes it once this process is gone, idle or not) and given
/// an in/. When a task is done, everything else in it goes (the out-* folders the containers
/// wrote, and whatever they left there: links, fifos, folders without write permission, names
/// that are not UTF-8), without following a link, and in/ is emptied; the folder is kept only
/// if it then holds just the owner marker (a file) and in/ (a folder).
/// </summary>
internal sealed class TaskFolders(WorkerOptions options) : IDisposable
{
    /// <summary>How many idle folders are kept: more than a worker runs tasks at once.</summary>
    public const int Kept = 64;

    private const string InName = "in";

    private static readonly byte[] OwnerBytes = Encoding.UTF8.GetBytes(ProcessOwner.MarkerFile);
    private static readonly byte[] InBytes = Encoding.UTF8.GetBytes(InName);

    private readonly FolderPool _pool = new(Kept, () => Make(options), Reset);

    /// <summary>How many idle folders are kept now.</summary>
    public int Idle => _pool.Idle;

    /// <summary>A folder that holds only its owner marker and an empty in/.</summary>
    public string Take() => _pool.Take();

    /// <summary>
    /// Resets a folder for the next task, or removes it; null, or why it could not be removed. A
    /// folder its task left as it was taken (<paramref name="asTaken"/>: <see cref="Scratch.AsTaken"/>)
    /// is kept without the reset.
    /// </summary>
    public string? Return(string folder, bool asTaken = false) => _pool.Return(folder, asTaken);

    public void Dispose() => _pool.Dispose();

    public static string In(string folder) => Path.Combine(folder, InName);

    private static string Make(WorkerOptions options)
    {
        Scratch.PrepareRoot(options);
        var path = Path.Combine(options.Scratch, "task-" + Guid.NewGuid().ToString("N")[..16]);
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        ProcessOwner.Mark(path);
        Directory.CreateDirectory(In(path));
        return path;
    }

    /// <summary>
    /// Removes all but the marker and in/, empties in/, and says whether the folder is as
    /// <see cref="Make"/> left it: just the marker (a regular file) and in/ (a folder, not a link).
    /// Everything is reached through the folder's descriptor, never by a path a container could
    /// have changed. The marker's content is not read again: the folder is private to the engine
    /// (mode 0700, containers see only their binds), this process wrote the marker when it made
    /// the folder, and the pool gives out only folders this process made.
    /// </summary>
    private static bool Reset(string folder)
    {
        using var root = NoFollow.OpenDirectory(folder);

        // A batch of names at a time: what is removed leaves, so the next read gives what is left.
        // A batch short of the most read at once was the whole folder (nothing else writes in it
        // now): what it held besides the others says whether the marker and in/ are there. Each
        // name's kind is its folder entry's (d_type), looked at only where the file system does
        // not say (NoFollow.ReadNames).
        UnixFileKind? owner = null, inKind = null;
        while (true)
        {
            var kinds = new List<UnixFileKind?>();
            var names = NoFollow.ReadNames(root, folder, NoFollow.NameBatch + 2, kinds);
            var others = new List<(byte[] Name, UnixFileKind? Kind)>();
            for (var i = 0; i < names.Count; i++)
            {
                if (names[i].AsSpan().SequenceEqual(OwnerBytes))
                {
                    owner = kinds[i] ?? NoFollow.Stat(root, OwnerBytes, folder)?.Kind;
                }
                else if (names[i].AsSpan().SequenceEqual(InBytes))
                {
                    inKind = kinds[i] ?? NoFollow.Stat(root, InBytes, folder)?.Kind;
                }
                else
                {
                    others.Add((names[i], kinds[i]));
                }
            }

            var whole = names.Count < NoFollow.NameBatch + 2;
            if (whole && names.Count - others.Count != 2)
            {
                return false;
            }

            foreach (var (name, kind) in others)
            {
                if ((kind ?? NoFollow.Stat(root, name, folder)?.Kind) is not UnixFileKind.Directory)
                {
                    NoFollow.Remove(root, name, folder: false, folder);
                    continue;
                }

                // Only the engine names entries here (out-STEP-ATTEMPT); a name that does not
                // read back as the same bytes is not ours: the folder is not used again.
                var text = Encoding.UTF8.GetString(name);
                if (!Encoding.UTF8.GetBytes(text).AsSpan().SequenceEqual(name))
                {
                    return false;
                }

                // Emptied through its own descriptor (opened without following a link), then removed.
                using (var child = NoFollow.OpenDirectory(root, name, Path.Combine(folder, text)))
                {
                    NoFollow.EmptyFolder(child, Path.Combine(folder, text));
                }

                NoFollow.Remove(root, name, folder: true, folder);
            }

            if (whole)
            {
                break;
            }
        }

        // Opening in/ below (O_DIRECTORY, O_NOFOLLOW) checks its kind again.
        if (owner is not UnixFileKind.Regular || inKind is not UnixFileKind.Directory)
        {
            return false;
        }

        using var input = NoFollow.OpenDirectory(root, InBytes, In(folder));
        NoFollow.EmptyFolder(input, In(folder));
        return true;
    }
}
