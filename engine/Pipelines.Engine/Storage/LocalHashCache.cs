using System.Globalization;
using System.Text;

namespace Pipelines.Storage;

/// <summary>
/// The sha256 of local input files, remembered between runs on this machine so that a re-run
/// does not read every byte again (docs/explain.md, "What is trusted"). An entry is trusted
/// only while the file's size, modification time, change time (which no user can set back),
/// inode and device are all the same, and is written only for a file that had not changed for
/// <see cref="Settled"/> when it was hashed, so a write within the same timestamp tick cannot
/// hide behind an entry (git's "racy" rule). Small files are hashed every time: reading one
/// costs about what reading an entry does. One small file per input file, so memory does not
/// grow with the data.
/// </summary>
internal sealed class LocalHashCache(string folder, TimeProvider time)
{
    /// <summary>Files below this size are hashed every time.</summary>
    public const long MinSize = 1L << 20;

    /// <summary>How long a file must have been unchanged when it was hashed for its entry to be written.</summary>
    public static readonly TimeSpan Settled = TimeSpan.FromSeconds(2);

    /// <summary>$PIPELINES_HOME/hashes, or ~/.local/state/pipelines/hashes (beside the embedded runs' index).</summary>
    public static LocalHashCache Default { get; } = new(
        Path.Combine(Settings.PipelinesHome.Folder, "hashes"),
        TimeProvider.System);

    public string Folder => folder;

    /// <summary>The sha256 of the file's bytes: the remembered one while the file's status is the same, else read and (when it settled) remembered.</summary>
    public async Task<string> Sha256Async(string path, CancellationToken cancellationToken)
    {
        if (!UnixFile.TryStat(path, followLinks: true, out var before, out _) || before.Kind != UnixFileKind.Regular || before.Size < MinSize)
        {
            return (await Hashing.OfFileAsync(path, cancellationToken, md5: false).ConfigureAwait(false)).Sha256;
        }

        var full = Path.GetFullPath(path);
        var entry = EntryPath(full);
        var stamp = Stamp(full, before);
        if (Read(entry) is { } lines && lines.Length == 2 && lines[0] == stamp && lines[1].Length == 64)
        {
            return lines[1];
        }

        var started = time.GetUtcNow();
        var sha = (await Hashing.OfFileAsync(path, cancellationToken, md5: false).ConfigureAwait(false)).Sha256;
        var changedAt = DateTimeOffset.FromUnixTimeMilliseconds(Math.Max(before.ChangeTimeNs, before.ModifyTimeNs) / 1_000_000);
        if (UnixFile.TryStat(path, followLinks: true, out var after, out _) && Stamp(full, after) == stamp && started - changedAt >= Settled)
        {
            Write(entry, stamp + "\n" + sha);
        }

        return sha;
    }

    private string EntryPath(string full)
    {
        var name = Hashing.Sha256Hex(Encoding.UTF8.GetBytes(full));
        return Path.Combine(folder, name[..2], name + ".txt");
    }

    private static string Stamp(string full, UnixFileStatus s) => string.Join(
        ' ',
        s.Size.ToString(CultureInfo.InvariantCulture),
        s.ModifyTimeNs.ToString(CultureInfo.InvariantCulture),
        s.ChangeTimeNs.ToString(CultureInfo.InvariantCulture),
        s.Inode.ToString(CultureInfo.InvariantCulture),
        s.Device.ToString(CultureInfo.InvariantCulture),
        full);

    private static string[]? Read(string entry)
    {
        try
        {
            return File.ReadAllText(entry).Split('\n');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No entry (or one that cannot be read): the file is hashed, as it would be without a cache.
            return null;
        }
    }

    private static void Write(string entry, string text)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(entry)!);
            var temp = entry + "." + Guid.NewGuid().ToString("N")[..8];
            File.WriteAllText(temp, text);
            File.Move(temp, entry, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A home that cannot be written only costs the next run a read of the file.
        }
    }
}
