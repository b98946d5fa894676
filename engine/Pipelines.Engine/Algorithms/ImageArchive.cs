using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text.Json;

namespace Pipelines.Algorithms;

/// <summary>
/// What a `docker save` tarball holds, read from a file without holding it in memory: one image's
/// manifest, its config (whose sha256 is the image id the engine reports) and its layers. A file
/// that is not such a tarball is refused by <see cref="ReadAsync"/> with what is wrong.
/// </summary>
internal sealed record ImageArchive(string Digest, IReadOnlyList<string> RepoTags, int Layers, IReadOnlyList<string> LockDownNotes)
{
    private const int MaxManifestBytes = 1 << 20;
    private const int MaxConfigBytes = 8 << 20;
    private const int MaxEntries = 100_000;

    /// <summary>Reads and checks the tarball at <paramref name="path"/>; <paramref name="what"/> names it in messages.</summary>
    public static async Task<ImageArchive> ReadAsync(string path, string what, CancellationToken cancellationToken)
    {
        await using (var probe = File.OpenRead(path))
        {
            var head = new byte[2];
            if (await probe.ReadAsync(head, cancellationToken).ConfigureAwait(false) == 2 && head[0] == 0x1f && head[1] == 0x8b)
            {
                throw Refuse(what, "it is gzip-compressed: push the plain tar that `docker save` writes");
            }
        }

        // Pass 1: the names and manifest.json, which `docker save` writes after the layers.
        var names = new HashSet<string>(StringComparer.Ordinal);
        byte[]? manifest = null;
        await ForEachEntryAsync(path, what, async entry =>
        {
            var name = Normalize(entry.Name);
            if (names.Count >= MaxEntries)
            {
                throw Refuse(what, $"it holds more than {MaxEntries} entries");
            }

            names.Add(name);
            if (name == "manifest.json" && entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile)
            {
                manifest = await ReadEntryAsync(entry, MaxManifestBytes, what, cancellationToken).ConfigureAwait(false);
            }

            return true;
        }, cancellationToken).ConfigureAwait(false);

        if (manifest is null)
        {
            throw Refuse(what, names.Count == 0 ? "it is empty or not a tar archive" : "it has no manifest.json, so it is not a `docker save` tarball");
        }

        var (configName, tags, layers) = ParseManifest(manifest, what);
        foreach (var layer in layers.Where(l => !names.Contains(l)))
        {
            throw Refuse(what, $"manifest.json names the layer {layer}, which the tarball does not hold");
        }

        if (!names.Contains(configName))
        {
            throw Refuse(what, $"manifest.json names the config {configName}, which the tarball does not hold");
        }

        // Pass 2: the config, hashed as stored: its sha256 is the image id.
        byte[]? config = null;
        await ForEachEntryAsync(path, what, async entry =>
        {
            if (Normalize(entry.Name) != configName)
            {
                return true;
            }

            config = await ReadEntryAsync(entry, MaxConfigBytes, what, cancellationToken).ConfigureAwait(false);
            return false;
        }, cancellationToken).ConfigureAwait(false);

        var digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(config!));
        var named = NamedDigest(configName);
        if (named is not null && named != digest)
        {
            throw Refuse(what, $"its config {configName} has the sha256 {digest}, not the one its name says: the tarball was altered");
        }

        return new ImageArchive(digest, tags, layers.Count, LockDown(config!, what));
    }

    private static async Task ForEachEntryAsync(string path, string what, Func<TarEntry, Task<bool>> visit, CancellationToken ct)
    {
        await using var file = File.OpenRead(path);
        await using var tar = new TarReader(file);
        while (true)
        {
            TarEntry? entry;
            try
            {
                entry = await tar.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException or ArgumentException)
            {
                throw Refuse(what, "it is not a tar archive (" + e.Message.TrimEnd('.') + ")");
            }

            if (entry is null || !await visit(entry).ConfigureAwait(false))
            {
                return;
            }
        }
    }

    private static async Task<byte[]> ReadEntryAsync(TarEntry entry, int max, string what, CancellationToken ct)
    {
        if (entry.Length > max || entry.DataStream is null)
        {
            throw Refuse(what, $"{entry.Name} is {entry.Length} bytes, more than a manifest or config can be ({max})");
        }

        using var memory = new MemoryStream((int)entry.Length);
        await entry.DataStream.CopyToAsync(memory, ct).ConfigureAwait(false);
        return memory.ToArray();
    }

    private static (string Config, IReadOnlyList<string> Tags, IReadOnlyList<string> Layers) ParseManifest(byte[] manifest, string what)
    {
        try
        {
            using var doc = JsonDocument.Parse(manifest);
            if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() != 1)
            {
                var n = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement.GetArrayLength() : 0;
                throw Refuse(what, $"manifest.json describes {n} images; a version is one image (`docker save` one image)");
            }

            var image = doc.RootElement[0];
            var config = image.TryGetProperty("Config", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : throw Refuse(what, "manifest.json names no Config");
            var tags = image.TryGetProperty("RepoTags", out var t) && t.ValueKind == JsonValueKind.Array ? t.EnumerateArray().Select(x => x.GetString() ?? "").ToList() : [];
            var layers = image.TryGetProperty("Layers", out var l) && l.ValueKind == JsonValueKind.Array ? l.EnumerateArray().Select(x => Normalize(x.GetString() ?? "")).ToList() : [];
            return (Normalize(config), tags, layers);
        }
        catch (JsonException e)
        {
            throw Refuse(what, "manifest.json is not JSON (" + e.Message + ")");
        }
    }

    /// <summary>
    /// What the image's config asks for that the engine does not grant: containers of every
    /// image run locked down all the same (a non-root user, no network, a read-only root).
    /// </summary>
    private static List<string> LockDown(byte[] config, string what)
    {
        var notes = new List<string>();
        try
        {
            using var doc = JsonDocument.Parse(config);
            if (!doc.RootElement.TryGetProperty("rootfs", out _))
            {
                throw Refuse(what, "its config has no rootfs, so it is not an image config");
            }

            if (!doc.RootElement.TryGetProperty("config", out var c) || c.ValueKind != JsonValueKind.Object)
            {
                return notes;
            }

            var user = c.TryGetProperty("User", out var u) && u.ValueKind == JsonValueKind.String ? u.GetString() ?? "" : "";
            if (user is "" or "root" or "0" || user.StartsWith("0:", StringComparison.Ordinal) || user.StartsWith("root:", StringComparison.Ordinal))
            {
                notes.Add($"asks to run as {(user.Length == 0 ? "root (no User)" : user)}: runs as the non-root Docker:User");
            }

            if (c.TryGetProperty("ExposedPorts", out var p) && p.ValueKind == JsonValueKind.Object && p.EnumerateObject().Any())
            {
                notes.Add($"exposes {string.Join(", ", p.EnumerateObject().Select(x => x.Name))}: runs without a network");
            }

            if (c.TryGetProperty("Volumes", out var v) && v.ValueKind == JsonValueKind.Object && v.EnumerateObject().Any())
            {
                notes.Add($"declares volumes {string.Join(", ", v.EnumerateObject().Select(x => x.Name))}: the root file system is read-only, only /out and /tmp are writable");
            }

            return notes;
        }
        catch (JsonException e)
        {
            throw Refuse(what, "its config is not JSON (" + e.Message + ")");
        }
    }

    /// <summary>The digest a content-addressed name says (<c>blobs/sha256/HEX</c> or <c>HEX.json</c>), else null.</summary>
    private static string? NamedDigest(string name)
    {
        var file = name[(name.LastIndexOf('/') + 1)..];
        if (file.EndsWith(".json", StringComparison.Ordinal))
        {
            file = file[..^".json".Length];
        }

        return file.Length == 64 && file.All(char.IsAsciiHexDigitLower) ? "sha256:" + file : null;
    }

    private static string Normalize(string name) => name.StartsWith("./", StringComparison.Ordinal) ? name[2..] : name;

    private static PipelinesException Refuse(string what, string why) =>
        new($"{what} is not a Docker image tarball that can be pushed: {why}; nothing was stored", retryHelps: false);
}
