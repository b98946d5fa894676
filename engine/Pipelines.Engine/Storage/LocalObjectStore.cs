using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Pipelines.Storage;

/// <summary>
/// A local folder as an object store. Writes go to a temporary file and are renamed into place;
/// a file adopted whole is linked in. Downloads to the same file system are hard links (no bytes
/// copied), then read once for hashes. A task makes a few files here (its log, outputs, cache and
/// unit entries), so each costs few system calls: a folder is made only when the first try
/// finds it missing, and nothing is looked up twice (docs/benchmarks.md, "The files a task makes").
/// </summary>
internal sealed partial class LocalObjectStore : IObjectStore
{
    private readonly string _root;

    public LocalObjectStore(string root)
    {
        _root = Path.GetFullPath(root);
    }

    public string Name => _root;

    public IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken) =>
        ListAsync(prefix, startAfter: null, cancellationToken);

    public async IAsyncEnumerable<StoredObject> ListAsync(string prefix, string? startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!UnixFile.TryStat(_root, followLinks: true, out var root, out _) || root.Kind != UnixFileKind.Directory)
        {
            throw new PipelinesException(Directory.Exists(_root) || File.Exists(_root) ? $"{_root} is not a folder" : $"local folder {_root} does not exist", retryHelps: false);
        }

        // A sorted walk, one folder at a time: keys come out in ordinal order while only one
        // folder's entries per level are held, so a million files do not have to fit in memory.
        foreach (var o in Walk(_root, "", prefix, [(root.Device, root.Inode)], cancellationToken))
        {
            if (startAfter is null || string.CompareOrdinal(o.Key, startAfter) > 0)
            {
                yield return o;
            }
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <summary>
    /// The input rules (docs/workflow-spec.md, "Input folders"): links to files and folders are
    /// followed; a dangling link, a link loop, a fifo, socket or device, a name that is not UTF-8,
    /// and a folder that cannot be read are refused, naming the path. Nothing is skipped unseen
    /// except this store's own temporary files.
    /// </summary>
    private static IEnumerable<StoredObject> Walk(string folder, string keyPrefix, string prefix, HashSet<(ulong, ulong)> ancestors, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var entries = new List<(string Name, bool IsFolder, long Size, (ulong, ulong) Id)>();
        foreach (var name in ReadFolder(folder))
        {
            var path = Path.Combine(folder, name);
            if (!UnixFile.TryStat(path, followLinks: true, out var st, out var errno))
            {
                throw new PipelinesException(Refusal(path, name, errno), retryHelps: false);
            }

            switch (st.Kind)
            {
                case UnixFileKind.Directory:
                    entries.Add((name + "/", true, 0, (st.Device, st.Inode)));
                    break;
                case UnixFileKind.Regular when !IsTemporary(name):
                    entries.Add((name, false, st.Size, default));
                    break;
                case UnixFileKind.Regular:
                    break;
                default:
                    throw new PipelinesException($"{path} is {UnixFile.Describe(st.Kind)}: an input folder may hold only files, folders and links to them", retryHelps: false);
            }
        }

        // A folder sorts as its name plus '/', which is where its keys fall in ordinal order.
        entries.Sort((x, y) => string.CompareOrdinal(x.Name, y.Name));
        foreach (var (name, isFolder, size, id) in entries)
        {
            var key = keyPrefix + name;
            if (isFolder)
            {
                // Only folders that can hold keys under the prefix are entered.
                if (key.StartsWith(prefix, StringComparison.Ordinal) || prefix.StartsWith(key, StringComparison.Ordinal))
                {
                    // A folder is its device and inode (folders cannot be hard-linked): meeting one
                    // of the folders above again means a link leads back up, and the walk would not end.
                    var path = Path.Combine(folder, name[..^1]);
                    if (!ancestors.Add(id))
                    {
                        throw new PipelinesException($"{path} is a symbolic link loop: it leads back to a folder that contains it ({LinkTarget(path)})", retryHelps: false);
                    }

                    foreach (var o in Walk(path, key, prefix, ancestors, ct))
                    {
                        yield return o;
                    }

                    ancestors.Remove(id);
                }
            }
            else if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                yield return new StoredObject(key, size, null);
            }
        }
    }

    private static List<string> ReadFolder(string folder)
    {
        try
        {
            var names = new List<string>();
            foreach (var path in Directory.EnumerateFileSystemEntries(folder, "*", new EnumerationOptions { AttributesToSkip = 0, IgnoreInaccessible = false }))
            {
                names.Add(Path.GetFileName(path));
            }

            return names;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new PipelinesException($"cannot read folder {folder}: {e.Message}", retryHelps: false, e);
        }
    }

    private static string Refusal(string path, string name, int errno)
    {
        var isLink = UnixFile.TryStat(path, followLinks: false, out var own, out var ownErrno) && own.Kind == UnixFileKind.SymbolicLink;
        if (!isLink && ownErrno == UnixFile.ENOENT && name.Contains('\uFFFD', StringComparison.Ordinal))
        {
            // .NET decodes a name that is not UTF-8 with U+FFFD, and that name opens nothing.
            return $"{path}: the name is not valid UTF-8 (shown with U+FFFD); rename it";
        }

        return errno switch
        {
            UnixFile.ENOENT when isLink => $"{path} is a dangling symbolic link: {LinkTarget(path)} does not exist",
            UnixFile.ELOOP => $"{path} is a symbolic link loop",
            UnixFile.EACCES => $"{path} cannot be read: permission denied" + (isLink ? $" (a link to {LinkTarget(path)})" : ""),
            UnixFile.ENAMETOOLONG => $"{path} is longer than the system allows for a path",
            UnixFile.ENOENT => $"{path} disappeared while the folder was listed",
            _ => $"{path} cannot be read (errno {errno})",
        };
    }

    private static string LinkTarget(string path)
    {
        try
        {
            return File.ResolveLinkTarget(path, returnFinalTarget: false)?.FullName ?? path;
        }
        catch (IOException)
        {
            return path;
        }
    }

    public Task<StoredObject?> StatAsync(string key, CancellationToken cancellationToken)
    {
        var info = new FileInfo(PathOf(key));
        return Task.FromResult(info.Exists ? new StoredObject(key, info.Length, null) : null);
    }

    public async Task<FileDigest> DownloadAsync(string key, string localPath, CancellationToken cancellationToken)
    {
        var source = PathOf(key);

        // One look at the name itself: a plain file (the usual input) is linked as it is.
        // link(2) does not follow a symbolic link: it would stage the link itself, whose target
        // may be relative, or outside the container's view. Stage the file it leads to.
        if (!UnixFile.TryStat(source, followLinks: false, out var st, out _) || st.Kind == UnixFileKind.SymbolicLink)
        {
            st = RequireFile(source, key)!.Value;
            source = File.ResolveLinkTarget(source, returnFinalTarget: true)?.FullName ?? source;
        }
        else if (st.Kind != UnixFileKind.Regular)
        {
            throw new PipelinesException($"{source} is {UnixFile.Describe(st.Kind)}, not a file to read", retryHelps: false);
        }

        // A hard link shares the bytes: only files everyone may read are linked, since the
        // algorithm runs as another user; containers see them through a read-only mount.
        // No md5: a folder's content tags are sha256s (ContentTags).
        if ((st.Mode & (uint)UnixFileMode.OtherRead) != 0 && InFolder(localPath, () => Link(source, localPath) == 0 ? 0 : Marshal.GetLastPInvokeError()) == 0)
        {
            using var linked = UnixFile.OpenRead(localPath);
            return Hashing.OfHandle(linked, md5: false, cancellationToken);
        }

        CreateFolder(Path.GetDirectoryName(localPath)!);
        await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1, useAsync: true);
        await using var output = new FileStream(localPath, FileMode.Create, FileAccess.Write, FileShare.None, 1, useAsync: true);
        return await Hashing.CopyAsync(input, output, cancellationToken, md5: false).ConfigureAwait(false);
    }

    public Task<FileDigest> UploadAsync(string key, string localPath, CancellationToken cancellationToken) =>
        UploadAsync(key, localPath, "application/octet-stream", cancellationToken);

    // A folder keeps no content type.
    public async Task<FileDigest> UploadAsync(string key, string localPath, string contentType, CancellationToken cancellationToken)
    {
        FileDigest? digest = null;
        await ThroughTempAsync(PathOf(key), async temp =>
        {
            await using var input = new FileStream(localPath, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true);
            await using var output = CreateTemp(temp);
            digest = await Hashing.CopyAsync(input, output, cancellationToken).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
        return digest!;
    }

    /// <summary>
    /// The one way a file is put in place here: <paramref name="write"/> makes it under a temporary
    /// name in the target's folder (false: it made nothing), then a rename gives it the target's
    /// name, so a reader sees no file or all of it. A temporary file not renamed is removed; an
    /// I/O failure says which file could not be written.
    /// </summary>
    private static async ValueTask<bool> ThroughTempAsync(string target, Func<string, ValueTask<bool>> write)
    {
        var temp = TempPath(target);
        var renamed = false;
        try
        {
            if (!await write(temp).ConfigureAwait(false))
            {
                return false;
            }

            renamed = Rename(temp, target);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw WriteFailed(target, e);
        }
        finally
        {
            if (!renamed)
            {
                UnixFile.Discard(temp);
            }
        }
    }

    /// <summary>A new temporary file to copy into, its folder made if the first try finds it missing.</summary>
    private static FileStream CreateTemp(string temp)
    {
        try
        {
            return new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync: true);
        }
        catch (DirectoryNotFoundException)
        {
            CreateFolder(Path.GetDirectoryName(temp)!);
            return new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync: true);
        }
    }

    /// <summary>
    /// Takes the file itself where it can: a hard link into this folder (no bytes copied, no new
    /// file made, and the caller's name for it, when removed, frees nothing), then the rename into
    /// place as any write. Only a plain file is taken as is: a regular file with no other name and
    /// no extended attributes (ACLs included), which this process can make its own: owned by it,
    /// mode 0644, modified now, as a copy would be. Anything else, or a folder on another file
    /// system, is copied (<see cref="UploadAsync(string, string, CancellationToken)"/>). The hashes
    /// are of the bytes read through the descriptor, as a copy's are.
    /// </summary>
    public async Task<FileDigest> AdoptAsync(string key, SafeFileHandle file, CancellationToken cancellationToken)
    {
        var source = $"/proc/self/fd/{file.DangerousGetHandle()}";
        var target = PathOf(key);
        if (!MakePlain(file))
        {
            return await UploadAsync(key, source, cancellationToken).ConfigureAwait(false);
        }

        // Hashed before any name is given to it: a failure publishes nothing.
        var digest = Hashing.OfHandle(file, cancellationToken: cancellationToken);

        // Straight to its name when none is there (a first delivery): link(2) gives the whole
        // file its name at once, as a rename would, and nothing writes it any more, so a reader
        // sees no file or all of it. A name already there (a delivery again) is replaced through
        // a temporary name and a rename, which replaces atomically where link(2) would refuse.
        var linked = InFolder(target, () => LinkAt(AtFdCwd, source, AtFdCwd, target, AtSymlinkFollow) == 0 ? 0 : Marshal.GetLastPInvokeError());
        if (linked == 0)
        {
            return digest;
        }

        if (linked != UnixFile.EEXIST)
        {
            // Another file system (EXDEV), or links refused here: a copy, as any upload.
            return await UploadAsync(key, source, cancellationToken).ConfigureAwait(false);
        }

        return await ThroughTempAsync(target, temp => ValueTask.FromResult(LinkAt(AtFdCwd, source, AtFdCwd, temp, AtSymlinkFollow) == 0)).ConfigureAwait(false)
            ? digest
            : await UploadAsync(key, source, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Whether the open file is a regular file with one name and no extended attributes, made this
    /// process's own (owner, mode 0644, modified now); false leaves it to be copied.
    /// </summary>
    private static bool MakePlain(SafeFileHandle file)
    {
        var fd = (int)file.DangerousGetHandle();
        if (!UnixFile.TryStat(fd, out var status, out _) || status is not { Kind: UnixFileKind.Regular, Links: 1 })
        {
            return false;
        }

        return !UnixFile.HasExtendedAttributes(file)
            && FChown(fd, GetEuid(), GetEgid()) == 0
            && FChmod(fd, 0b110_100_100) == 0
            && FUtimens(fd, IntPtr.Zero) == 0;
    }

    private const int AtFdCwd = -100;
    private const int AtSymlinkFollow = 0x400;

    [LibraryImport("libc", EntryPoint = "linkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LinkAt(int olddirfd, string oldpath, int newdirfd, string newpath, int flags);

    [LibraryImport("libc", EntryPoint = "fchown", SetLastError = true)]
    private static partial int FChown(int fd, uint owner, uint group);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    private static partial int FChmod(int fd, uint mode);

    [LibraryImport("libc", EntryPoint = "futimens", SetLastError = true)]
    private static partial int FUtimens(int fd, IntPtr times);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "getegid")]
    private static partial uint GetEgid();

    /// <summary>
    /// Writes the bytes to a new temporary file (open, write, close: no lock, no truncate) and
    /// renames it into place, so a reader never sees part of it; no fsync, as before: a crash
    /// of the machine may lose the file, and every reader takes a missing or damaged entry for
    /// none (the cache runs the task again, docs/workflow-spec.md "Reuse").
    /// </summary>
    public Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ThroughTempAsync(PathOf(key), temp =>
        {
            var errno = InFolder(temp, () => UnixFile.WriteNew(temp, content.Span));
            return errno == 0 ? ValueTask.FromResult(true) : throw new IOException(Marshal.GetPInvokeErrorMessage(errno));
        }).AsTask();
    }

    /// <summary>
    /// Makes each folder with one mkdir, parents first: one already there (a delivery again) costs
    /// that failed mkdir and nothing else, and a missing parent is made as a write would make it.
    /// Any other failure is left to the writes that follow, which make their folder as always
    /// (<see cref="InFolder"/>) and say what stops them.
    /// </summary>
    public void NewFolders(IReadOnlyList<string> prefixes)
    {
        foreach (var prefix in prefixes)
        {
            var path = PathOf(prefix.TrimEnd('/'));
            if (MkDir(path, 0b111_111_111) == 0)
            {
                continue;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno == UnixFile.ENOENT)
            {
                try
                {
                    Directory.CreateDirectory(path);
                    continue;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    return;
                }
            }

            if (errno != UnixFile.EEXIST)
            {
                return;
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "mkdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MkDir(string path, uint mode);

    /// <summary>
    /// Makes a name in a folder (<paramref name="make"/>: 0, or the errno), and makes the folder
    /// only when the first try finds it missing: most writes go to a folder that is there, and
    /// making it first would cost a mkdir and a stat each time. The errno of the last try.
    /// </summary>
    private static int InFolder(string path, Func<int> make)
    {
        var errno = make();
        if (errno is UnixFile.ENOENT or UnixFile.ENOTDIR)
        {
            CreateFolder(Path.GetDirectoryName(path)!);
            errno = make();
        }

        return errno;
    }

    /// <summary>rename(2) of a temporary file onto its target (true), or an IOException naming why not.</summary>
    private static bool Rename(string temp, string target)
    {
        if (RenameNative(temp, target) != 0)
        {
            throw new IOException(Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError()));
        }

        return true;
    }

    [LibraryImport("libc", EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int RenameNative(string from, string to);

    public async Task<byte[]> ReadAllAsync(string key, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        _ = RequireFile(path, key);

        return await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
    }

    // Absence answered by the stat, without an exception (a cache look per task, mostly a miss).
    public async Task<byte[]?> TryReadAllAsync(string key, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        if (RequireFile(path, key, missingIsNull: true) is null)
        {
            return null;
        }

        return await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A small object's bytes, read in place by one open that follows no link and one pread, for
    /// the gather, which reads thousands of one-line parts (docs/benchmarks.md, "Gathering many
    /// small parts"). Null when the key is anything else: larger than <paramref name="maxBytes"/>,
    /// not a regular file (a link, a fifo), missing, or not readable; the caller then downloads
    /// it (<see cref="DownloadAsync"/>), which treats each of those as it always has.
    /// </summary>
    public byte[]? TryReadSmall(string key, int maxBytes)
    {
        var path = PathOf(key);
        if (!UnixFile.TryStat(path, followLinks: false, out var st, out _) || st.Kind != UnixFileKind.Regular || st.Size > maxBytes)
        {
            return null;
        }

        SafeFileHandle file;
        try
        {
            // O_NOFOLLOW and O_NONBLOCK: a link or a fifo put in its place since the look is refused, not followed or waited on.
            file = UnixFile.OpenRead(path, followLinks: false, nonBlocking: true);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }

        using (file)
        {
            // The size is the open file's own, checked again: the bytes read are never more than maxBytes.
            if (!UnixFile.TryStat((int)file.DangerousGetHandle(), out st, out _) || st.Kind != UnixFileKind.Regular || st.Size > maxBytes)
            {
                return null;
            }

            var bytes = new byte[st.Size];
            var done = 0;
            while (done < bytes.Length && UnixFile.ReadAt(file, bytes.AsSpan(done), done) is var read and > 0)
            {
                done += read;
            }

            // A file that changed size under the read is left to the download, which reads what is there.
            Span<byte> more = stackalloc byte[1];
            return done == bytes.Length && UnixFile.ReadAt(file, more, done) == 0 ? bytes : null;
        }
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        File.Delete(PathOf(key));
        return Task.CompletedTask;
    }

    public Task CopyAsync(string sourceKey, string destinationKey, CancellationToken cancellationToken) =>
        UploadAsync(destinationKey, PathOf(sourceKey), cancellationToken);

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existing, string created);

    internal const string TemporaryMarker = ".pipelines-tmp-";

    /// <summary>
    /// A write's temporary file, or one left by a crash; the older form was the target's name plus the marker.
    /// </summary>
    internal static bool IsTemporary(string name) => name.Contains(TemporaryMarker, StringComparison.Ordinal);

    /// <summary>
    /// A temporary name of fixed length (27 characters) in the target's folder, so the rename stays
    /// on one file system and a target name near the 255-byte limit still has a temporary name.
    /// 48 random bits, not a Guid: a Guid reads /dev/urandom each time, and the name needs only
    /// to differ from other writers' (every temporary file is created exclusively, O_EXCL).
    /// The folder is not made here: the write makes it if it is missing.
    /// </summary>
    internal static string TempPath(string target) =>
        Path.Combine(Path.GetDirectoryName(target)!, TemporaryMarker + Random.Shared.NextInt64(1L << 48).ToString("x12", System.Globalization.CultureInfo.InvariantCulture));

    private static void CreateFolder(string folder)
    {
        try
        {
            Directory.CreateDirectory(folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PipelinesException($"cannot create folder {folder}: {Blocker(folder) ?? e.Message}", retryHelps: false, e);
        }
    }

    /// <summary>The first part of the path that exists and is not a folder, said as a reason.</summary>
    /// <summary>
    /// A local file has no version tag: its tag is the sha256 of its bytes, remembered between
    /// runs while the file's status is the same (<see cref="LocalHashCache"/>).
    /// </summary>
    public Task<string> ContentTagAsync(StoredObject o, CancellationToken cancellationToken) =>
        o.ETag is { } tag ? Task.FromResult(tag) : LocalHashCache.Default.Sha256Async(PathOf(o.Key), cancellationToken);

    public string? RootBlocker() => Blocker(_root);

    internal static string? Blocker(string folder)
    {
        for (var p = folder; !string.IsNullOrEmpty(p); p = Path.GetDirectoryName(p))
        {
            if (UnixFile.TryStat(p, followLinks: true, out var st, out _))
            {
                return st.Kind == UnixFileKind.Directory ? null : $"{p} is {UnixFile.Describe(st.Kind)}, not a folder";
            }
        }

        return null;
    }

    /// <summary>
    /// Only a regular file (or a link to one) is read: opening a fifo would block until a writer
    /// came, and a device has no end. An entry may change kind between listing and reading.
    /// </summary>
    /// <remarks>Its status; with <paramref name="missingIsNull"/>, a missing file returns null instead of throwing.</remarks>
    private UnixFileStatus? RequireFile(string path, string key, bool missingIsNull = false)
    {
        if (!UnixFile.TryStat(path, followLinks: true, out var st, out var errno))
        {
            return errno == UnixFile.ENOENT && missingIsNull
                ? null
                : throw (errno == UnixFile.ENOENT ? new ObjectNotFoundException(Name, key) : new PipelinesException(Refusal(path, Path.GetFileName(path), errno), retryHelps: false));
        }

        if (st.Kind != UnixFileKind.Regular)
        {
            throw new PipelinesException($"{path} is {UnixFile.Describe(st.Kind)}, not a file to read", retryHelps: false);
        }

        return st;
    }

    private static PipelinesException WriteFailed(string target, Exception e) =>
        new($"cannot write {target}: {e.Message}", retryHelps: false, e);

    private string PathOf(string key)
    {
        if (key.Split('/').Any(s => s is ".." or "."))
        {
            throw new PipelinesException($"key '{key}' has a '.' or '..' segment", retryHelps: false);
        }

        var full = Path.GetFullPath(Path.Combine(_root, key));
        if (!full.StartsWith(_root, StringComparison.Ordinal))
        {
            throw new PipelinesException($"key '{key}' leaves {_root}", retryHelps: false);
        }

        return full;
    }
}

/// <summary>An object that should exist does not (deleted, or never written).</summary>
public sealed class ObjectNotFoundException(string store, string key)
    : PipelinesException($"{store}: object '{key}' does not exist", retryHelps: false);
