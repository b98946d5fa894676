namespace Pipelines.Storage;

/// <summary>
/// Local paths as the file system sees them: the one home of resolving a path's links, for every
/// rule that asks whether a local path is inside a folder (Submit:LocalRoots, a tenant's folders),
/// since a link inside an allowed folder may lead anywhere.
/// </summary>
internal static class LocalPaths
{
    /// <summary>The path made full, with every link on the way resolved, as far as the path exists.</summary>
    public static string Resolve(string path)
    {
        var full = Path.GetFullPath(path);
        var resolved = "/";
        foreach (var part in full.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(resolved, part);
            for (var hops = 0; hops < 40 && new FileInfo(next).LinkTarget is { } target; hops++)
            {
                next = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(next)!, target));
            }

            resolved = next;
        }

        return resolved;
    }
}
