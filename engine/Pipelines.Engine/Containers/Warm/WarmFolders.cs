using Pipelines.Storage;

namespace Pipelines.Containers.Warm;

/// <summary>Empties a warm container's bound folders between requests, as root, never following a link.</summary>
internal static class WarmFolders
{
    /// <summary>
    /// Removes everything inside <paramref name="path"/> and keeps the folder itself (it is bound
    /// into the container: a new folder would not be seen there). Names are raw bytes, so a name
    /// that is not UTF-8 goes too; a link is removed, never followed.
    /// </summary>
    public static void Empty(string path)
    {
        using var root = NoFollow.OpenDirectory(path);
        EmptyAt(root, path);
    }

    private static void EmptyAt(NoFollow.SafeDirectory folder, string shown)
    {
        foreach (var raw in NoFollow.ReadNames(folder, shown))
        {
            var entry = NoFollow.Stat(folder, raw, shown);
            if (entry is { Kind: UnixFileKind.Directory })
            {
                using (var child = NoFollow.OpenDirectory(folder, raw, shown))
                {
                    EmptyAt(child, shown);
                }

                NoFollow.Remove(folder, raw, folder: true, shown);
            }
            else if (entry is not null)
            {
                NoFollow.Remove(folder, raw, folder: false, shown);
            }
        }
    }
}
