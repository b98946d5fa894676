using System.Text;
using Microsoft.Win32.SafeHandles;
using Pipelines.Model;
using Pipelines.Storage;

namespace Pipelines.Containers;

/// <summary>
/// What a step left in its <c>/out</c>, read without trusting it: the container is other
/// people's code, and the engine runs as root. Every entry is looked at relative to an open
/// folder descriptor and never through a link (<see cref="NoFollow"/>); only regular files
/// can be outputs; names must be UTF-8 without control characters; the step's quotas on files
/// and bytes are checked while walking, before anything is copied.
/// </summary>
internal static class OutputFolder
{
    /// <summary>S3's limit on a key; a kept output's path under /out must leave room for the run's prefix.</summary>
    public const int MaxPathBytes = 768;

    /// <summary>
    /// Walks a finished step's /out: returns the regular files that <paramref name="keep"/>
    /// accepts, removes everything else (a link is removed itself, its target never touched),
    /// and fails the attempt with a reason naming the path for a kept entry that is not a
    /// regular file, a bad name, or a quota passed.
    /// </summary>
    public static OutputScan Collect(string outDir, Func<string, bool> keep, OutputLimits limits)
    {
        using var root = NoFollow.OpenDirectory(outDir);
        return Collect(root, keep, limits);
    }

    /// <summary><see cref="Collect(string, Func{string, bool}, OutputLimits)"/> of an open /out (a warm container's, held open), which is left open.</summary>
    public static OutputScan Collect(NoFollow.SafeDirectory root, Func<string, bool> keep, OutputLimits limits)
    {
        var kept = new List<OutputFile>();
        var warnings = new List<string>();
        long files = 0, bytes = 0, listed = 0;
        var folders = false;
        Walk(root, "");
        kept.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return new OutputScan(kept, warnings) { Flat = !folders };

        void Walk(NoFollow.SafeDirectory folder, string prefix)
        {
            // Every name listed is counted against the quota before the walk is done, so no folder
            // is read past the quota plus one: a million names are refused, never held.
            var names = NoFollow.ReadNames(folder, Shown(prefix), Math.Max(1, limits.MaxFiles + 1 - listed));
            listed += names.Count;
            foreach (var raw in names)
            {
                var rel = prefix + CheckedName(raw, prefix);
                var shown = Shown(rel);
                if (++files > limits.MaxFiles)
                {
                    throw Refused($"{limits.Who} left more than {limits.MaxFiles} files and folders in /out, over its quota ({limits.FilesSource})");
                }

                if (Encoding.UTF8.GetByteCount(rel) > MaxPathBytes)
                {
                    throw Refused($"{Shown(rel[..Math.Min(rel.Length, 80)])}...: an output path may be at most {MaxPathBytes} bytes long");
                }

                var entry = NoFollow.Stat(folder, raw, shown);
                if (entry is null)
                {
                    continue;
                }

                switch (entry.Value.Kind)
                {
                    case UnixFileKind.Directory:
                        folders = true;
                        using (var child = NoFollow.OpenDirectory(folder, raw, shown))
                        {
                            Walk(child, rel + "/");
                        }

                        break;
                    case UnixFileKind.Regular:
                        bytes += entry.Value.Size;
                        if (bytes > limits.MaxBytes)
                        {
                            throw Refused($"{limits.Who} left more than {Model.Quantities.FormatSize(limits.MaxBytes)} in /out (at {shown}, {Model.Quantities.FormatSize(entry.Value.Size)}), over its quota ({limits.BytesSource})");
                        }

                        if (keep(rel))
                        {
                            // A local output folder would take it for its own temporary file and leave
                            // it out of every listing (a later run's input) without a word.
                            if (LocalObjectStore.IsTemporary(rel[(rel.LastIndexOf('/') + 1)..]))
                            {
                                throw Refused($"{shown}: the name holds '{LocalObjectStore.TemporaryMarker}', which output folders keep for the engine's temporary files; output names may not");
                            }

                            kept.Add(new OutputFile(rel, entry.Value.Size));
                        }
                        else
                        {
                            NoFollow.Remove(folder, raw, folder: false, shown);
                        }

                        break;
                    default:
                        if (keep(rel))
                        {
                            throw Refused($"{shown} is {NoFollow.Describe(entry.Value.Kind)}; outputs must be regular files");
                        }

                        // Not an output: removed (a link itself, never what it points at), and said.
                        NoFollow.Remove(folder, raw, folder: false, shown);
                        warnings.Add($"{shown} is {NoFollow.Describe(entry.Value.Kind)} and not a kept output: removed");
                        break;
                }
            }
        }
    }

    /// <summary>
    /// The deepest folder nesting an output can have: every level adds at least two bytes ("d/")
    /// to a path of at most <see cref="MaxPathBytes"/>, so anything deeper can never be kept.
    /// </summary>
    public const int MaxDepth = MaxPathBytes / 2;

    /// <summary>
    /// How much a running step has written so far: entries and allocated bytes (a sparse file
    /// counts what it really takes on disk), stopping as soon as a limit is passed, and whether it
    /// nests folders deeper than <see cref="MaxDepth"/> (no output can be there: the walk does
    /// not go down it, and the attempt is stopped for it). An entry that vanishes or changes while
    /// the container writes is skipped, and the walk goes on past it; the final walk judges it.
    /// </summary>
    public static (long Files, long Bytes, bool TooDeep) Measure(string outDir, OutputLimits limits)
    {
        long files = 0, bytes = 0, listed = 0;
        var tooDeep = false;
        try
        {
            using var root = NoFollow.OpenDirectory(outDir);
            Walk(root, 0);
        }
        catch (PipelinesException)
        {
            // The folder itself removed or replaced: what was counted stands.
        }

        return (files, bytes, tooDeep);

        void Walk(NoFollow.SafeDirectory folder, int depth)
        {
            List<byte[]> names;
            try
            {
                names = NoFollow.ReadNames(folder, ContainerLayout.Out, Math.Max(1, limits.MaxFiles + 1 - listed));
                listed += names.Count;
            }
            catch (PipelinesException)
            {
                return;
            }

            foreach (var raw in names)
            {
                if (++files > limits.MaxFiles || bytes > limits.MaxBytes || tooDeep)
                {
                    return;
                }

                UnixFileStatus? entry;
                try
                {
                    entry = NoFollow.Stat(folder, raw, ContainerLayout.Out);
                }
                catch (PipelinesException)
                {
                    continue;
                }

                if (entry is null)
                {
                    continue;
                }

                bytes += entry.Value.Allocated;
                if (entry.Value.Kind != UnixFileKind.Directory)
                {
                    continue;
                }

                if (depth + 1 >= MaxDepth)
                {
                    tooDeep = true;
                    return;
                }

                NoFollow.SafeDirectory child;
                try
                {
                    child = NoFollow.OpenDirectory(folder, raw, ContainerLayout.Out);
                }
                catch (PipelinesException)
                {
                    // Removed, or swapped for a link, since it was looked at: skipped, not the end of the walk.
                    continue;
                }

                using (child)
                {
                    Walk(child, depth + 1);
                }
            }
        }
    }

    /// <summary>
    /// Opens a kept output for reading by walking its path one folder at a time, never through
    /// a link, and checks it is still a regular file: what is read is what was judged.
    /// </summary>
    public static SafeFileHandle OpenKept(string outDir, string relative)
    {
        using var root = NoFollow.OpenDirectory(outDir);
        return OpenKept(root, relative);
    }

    /// <summary><see cref="OpenKept(string, string)"/> from an open /out, which is left open.</summary>
    public static SafeFileHandle OpenKept(NoFollow.SafeDirectory root, string relative)
    {
        var parts = relative.Split('/');
        var folder = root;
        try
        {
            for (var i = 0; i < parts.Length - 1; i++)
            {
                var next = NoFollow.OpenDirectory(folder, Encoding.UTF8.GetBytes(parts[i]), Shown(relative));
                if (folder != root)
                {
                    folder.Dispose();
                }

                folder = next;
            }

            return NoFollow.OpenRegularFile(folder, Encoding.UTF8.GetBytes(parts[^1]), Shown(relative));
        }
        finally
        {
            if (folder != root)
            {
                folder.Dispose();
            }
        }
    }

    /// <summary>A name as the user should see it: control characters and bytes that are not UTF-8 escaped.</summary>
    public static string Escape(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            _ = c switch
            {
                '\n' => sb.Append("\\n"),
                '\r' => sb.Append("\\r"),
                '\t' => sb.Append("\\t"),
                _ when char.IsControl(c) => sb.Append($"\\x{(int)c:x2}"),
                _ => sb.Append(c),
            };
        }

        return sb.ToString();
    }

    private static string CheckedName(byte[] raw, string prefix)
    {
        string name;
        try
        {
            name = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(raw);
        }
        catch (DecoderFallbackException)
        {
            var shown = string.Concat(raw.Select(b => b is >= 0x20 and < 0x7f ? ((char)b).ToString() : $"\\x{b:x2}"));
            throw Refused($"{ContainerLayout.Out}/{Escape(prefix)}{shown}: the name is not valid UTF-8; output names must be UTF-8");
        }

        if (name.Any(char.IsControl))
        {
            throw Refused($"{ContainerLayout.Out}/{Escape(prefix + name)}: the name holds a control character; output names may not");
        }

        return name;
    }

    private static string Shown(string relative) => ContainerLayout.Out + "/" + Escape(relative);

    private static OutputRefusedException Refused(string message) => new(message);
}

/// <summary>A kept output: its path under /out and its size when it was judged.</summary>
internal sealed record OutputFile(string Path, long Size);

/// <summary>The kept outputs of a step, in ordinal order, and what was removed with a warning.</summary>
internal sealed record OutputScan(IReadOnlyList<OutputFile> Kept, IReadOnlyList<string> Warnings)
{
    /// <summary>
    /// Whether /out held no folder: the walk read all of it, removed what is not kept, so it
    /// holds the kept files alone, at its top (nothing writes in it any more when it is judged).
    /// </summary>
    public bool Flat { get; init; }
}

/// <summary>What a step left in /out cannot be taken: the attempt fails with this reason.</summary>
internal sealed class OutputRefusedException(string message) : PipelinesException(message, retryHelps: false);
