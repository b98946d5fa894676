using System.Runtime.InteropServices;

namespace Pipelines.Storage;

/// <summary>
/// The few libc calls that let the engine look at a folder a container wrote without trusting
/// it: every name is resolved relative to an open directory descriptor, with
/// <c>O_NOFOLLOW</c> and <c>AT_SYMLINK_NOFOLLOW</c>, so no symbolic link is ever followed and no
/// path is looked up twice. Names are raw bytes, as the kernel keeps them.
/// </summary>
internal static unsafe partial class NoFollow
{
    // Flag values differ between architectures for O_DIRECTORY and O_NOFOLLOW (asm-generic vs x86).
    private static readonly bool IsArm = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm;
    private const int ORdOnly = 0;
    private const int OWrOnly = 1;
    private const int OCreat = 0x40;
    private const int OExcl = 0x80;
    private const int ONonBlock = 0x800;
    private const int OCloExec = 0x80000;
    private static readonly int ODirectory = IsArm ? 0x4000 : 0x10000;
    private static readonly int ONoFollow = IsArm ? 0x8000 : 0x20000;
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtRemoveDir = 0x200;
    private const uint StatxBasicStats = 0x7ff;
    private const int ENOENT = 2;
    private const int EEXIST = 17;
    private const uint RenameNoReplace = 1;

    /// <summary>Opens a folder without following a link at its last component.</summary>
    public static SafeDirectory OpenDirectory(string path)
    {
        var fd = OpenAt(AtFdCwd, System.Text.Encoding.UTF8.GetBytes(path), ORdOnly | ODirectory | ONoFollow | OCloExec);
        return fd >= 0 ? new SafeDirectory(fd) : throw Error("cannot open folder", path);
    }

    /// <summary>Opens a child folder of an open folder, never through a link.</summary>
    public static SafeDirectory OpenDirectory(SafeDirectory parent, byte[] name, string shownAs)
    {
        var fd = OpenAt(parent.Fd, name, ORdOnly | ODirectory | ONoFollow | OCloExec);
        return fd >= 0 ? new SafeDirectory(fd) : throw Error("cannot open folder", shownAs);
    }

    /// <summary>
    /// Opens a regular file of an open folder for reading, never through a link and never
    /// blocking (a fifo put in its place opens at once and is then refused).
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle OpenRegularFile(SafeDirectory parent, byte[] name, string shownAs)
    {
        var fd = OpenAt(parent.Fd, name, ORdOnly | ONoFollow | ONonBlock | OCloExec);
        if (fd < 0)
        {
            throw Error("cannot open", shownAs);
        }

        var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        var entry = StatDescriptor(fd, shownAs);
        if (entry.Kind != UnixFileKind.Regular)
        {
            handle.Dispose();
            throw new PipelinesException($"{shownAs} is not a regular file ({Describe(entry.Kind)})", retryHelps: false);
        }

        return handle;
    }

    /// <summary>The entry a name is in an open folder, without following a link; null when it is gone.</summary>
    public static UnixFileStatus? Stat(SafeDirectory parent, byte[] name, string shownAs)
    {
        Span<byte> buffer = stackalloc byte[256];
        fixed (byte* n = Terminated(name))
        fixed (byte* b = buffer)
        {
            if (Statx(parent.Fd, n, AtSymlinkNoFollow, StatxBasicStats, b) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                return errno == ENOENT ? null : throw Error("cannot look at", shownAs, errno);
            }
        }

        return UnixFile.Parse(buffer);
    }

    /// <summary>How many names <see cref="EmptyFolder"/> and <see cref="MoveEntries"/> read at once.</summary>
    internal const int NameBatch = 4096;

    /// <summary>
    /// The names in an open folder, as raw bytes, without "." and "..", read from its start: at
    /// most <paramref name="max"/> of them, so that a folder a container filled with a million
    /// names is never held whole (a caller passes its quota on files plus one, or a batch).
    /// </summary>
    public static List<byte[]> ReadNames(SafeDirectory folder, string shownAs, long max) => ReadNames(folder, shownAs, max, kinds: null);

    /// <summary>
    /// <see cref="ReadNames(SafeDirectory, string, long)"/>, and each name's kind as its folder
    /// entry says it (getdents64's d_type) in <paramref name="kinds"/>: null where the file system
    /// does not say (DT_UNKNOWN), and the caller looks (<see cref="Stat"/>). A walk that only
    /// removes needs no statx per name: what it does with the kind is checked by the kernel
    /// again (unlinkat of a folder fails, and a folder is opened with O_DIRECTORY and O_NOFOLLOW).
    /// </summary>
    public static List<byte[]> ReadNames(SafeDirectory folder, string shownAs, long max, List<UnixFileKind?>? kinds)
    {
        // getdents64 on the folder's own descriptor, from its start: no duplicate, no DIR stream
        // (fdopendir, its fstat and fcntls, rewinddir, closedir cost five calls more per read, and
        // a task reads a dozen folders). A descriptor read before is set back to the start first.
        if (folder.Read && LSeek(folder.Fd, 0, SeekSet) < 0)
        {
            throw Error("cannot read folder", shownAs);
        }

        folder.Read = true;
        var names = new List<byte[]>();
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(DirentBuffer);
        try
        {
            fixed (byte* b = buffer)
            {
                while (names.Count < max)
                {
                    var read = GetDents64(folder.Fd, b, DirentBuffer);
                    if (read < 0)
                    {
                        throw Error("cannot read folder", shownAs);
                    }

                    if (read == 0)
                    {
                        break;
                    }

                    // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
                    for (nint at = 0; at < read && names.Count < max;)
                    {
                        var entry = b + at;
                        at += *(ushort*)(entry + 16);
                        var name = MemoryMarshal.CreateReadOnlySpanFromNullTerminated(entry + 19);
                        if (!name.SequenceEqual("."u8) && !name.SequenceEqual(".."u8))
                        {
                            names.Add(name.ToArray());
                            kinds?.Add(KindOf(entry[18]));
                        }
                    }
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }

        return names;
    }

    /// <summary>A folder entry's d_type as a kind; null for DT_UNKNOWN (or a type not known here).</summary>
    private static UnixFileKind? KindOf(byte type) => type switch
    {
        1 => UnixFileKind.Fifo,
        2 => UnixFileKind.CharacterDevice,
        4 => UnixFileKind.Directory,
        6 => UnixFileKind.BlockDevice,
        8 => UnixFileKind.Regular,
        10 => UnixFileKind.SymbolicLink,
        12 => UnixFileKind.Socket,
        _ => null,
    };

    /// <summary>The bytes of directory entries one getdents64 call may return.</summary>
    private const int DirentBuffer = 32 * 1024;

    private const int SeekSet = 0;

    /// <summary>Removes a name (a file, a link itself, a fifo...) from an open folder; a folder with <paramref name="folder"/>.</summary>
    public static void Remove(SafeDirectory parent, byte[] name, bool folder, string shownAs)
    {
        fixed (byte* n = Terminated(name))
        {
            if (UnlinkAt(parent.Fd, n, folder ? AtRemoveDir : 0) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno != ENOENT)
                {
                    throw Error("cannot remove", shownAs, errno);
                }
            }
        }
    }

    /// <summary>
    /// Removes one entry of an open folder, whatever it is: a folder with all it holds
    /// (<see cref="EmptyFolder(SafeDirectory, string)"/>, opened without following a link), anything
    /// else (a link itself) unlinked. Nothing when it is not there. For a name the caller knows it
    /// put there: the folder's other names are not read.
    /// </summary>
    public static void RemoveEntry(SafeDirectory parent, byte[] name, string shownAs)
    {
        var fd = OpenAt(parent.Fd, name, ORdOnly | ODirectory | ONoFollow | ONonBlock | OCloExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is ENOTDIR or ELOOP)
            {
                Remove(parent, name, folder: false, shownAs);
                return;
            }

            if (errno != ENOENT)
            {
                throw Error("cannot open folder", shownAs, errno);
            }

            return;
        }

        using (var child = new SafeDirectory(fd))
        {
            EmptyFolder(child, shownAs);
        }

        Remove(parent, name, folder: true, shownAs);
    }

    private const int ENOTDIR = 20;
    private const int ELOOP = 40;

    /// <summary>How many folders deep <see cref="EmptyFolder"/> holds open at once.</summary>
    internal const int EmptyDepth = 64;

    /// <summary>
    /// Removes a folder and everything in it without following any link, whatever the names
    /// (raw bytes, so a name that is not UTF-8 is removed too).
    /// </summary>
    public static void DeleteTree(string path)
    {
        if (!Directory.Exists(path) || new FileInfo(path).LinkTarget is not null)
        {
            return;
        }

        EmptyFolder(path);
        Directory.Delete(path);
    }

    /// <summary>
    /// Removes everything inside a folder and keeps the folder, never following a link, whatever
    /// the names (raw bytes, so a name that is not UTF-8 goes too): a folder a container wrote in.
    /// A container can leave folders nested a hundred thousand deep: the walk keeps its own stack
    /// (no recursion to overflow the process's) with at most <see cref="EmptyDepth"/> folders
    /// open, and a folder found deeper is first moved up into the root under a new name, to be
    /// emptied from there. Call it when nothing writes in the folder any more.
    /// </summary>
    public static void EmptyFolder(string path)
    {
        using var root = OpenDirectory(path);
        EmptyFolder(root, path);
    }

    /// <summary>
    /// Empties an open folder (<see cref="EmptyFolder(string)"/>), named <paramref name="path"/> in
    /// messages. Each name's kind is its folder entry's (d_type), looked at with a statx only where
    /// the file system does not say: a name taken for a file and unlinked that is a folder fails
    /// (EISDIR), and one taken for a folder is opened with O_DIRECTORY and O_NOFOLLOW, which
    /// refuses anything else, so a wrong kind stops the walk with an error and removes nothing else.
    /// </summary>
    public static void EmptyFolder(SafeDirectory root, string path)
    {
        var stack = new List<Level> { Level.Read(root, path, null) };
        var moved = 0L;
        try
        {
            while (stack.Count > 0)
            {
                var level = stack[^1];
                if (level.Next == level.Names.Count && level.Names.Count > 0)
                {
                    // A batch is done, and every name in it gone (or moved up into the root): the
                    // folder's next names are what it still holds. A batch short of NameBatch was
                    // the whole folder, and nothing else writes in it: it is empty now, unless
                    // it is the root and folders were moved up into it.
                    stack[^1] = level.Names.Count < NameBatch && (stack.Count > 1 || moved == 0) ? level.Done() : Level.Read(level.Folder, path, level.Name);
                    continue;
                }

                if (level.Next == level.Names.Count)
                {
                    // Emptied: closed, then removed from its parent (the root itself is kept).
                    stack.RemoveAt(stack.Count - 1);
                    if (level.Name is not null)
                    {
                        level.Folder.Dispose();
                        Remove(stack[^1].Folder, level.Name, folder: true, path);
                    }

                    continue;
                }

                var raw = level.Names[level.Next];
                var kind = level.Kinds[level.Next] ?? Stat(level.Folder, raw, path)?.Kind;
                stack[^1] = level with { Next = level.Next + 1 };
                if (kind != UnixFileKind.Directory)
                {
                    if (kind is not null)
                    {
                        Remove(level.Folder, raw, folder: false, path);
                    }

                    continue;
                }

                if (stack.Count < EmptyDepth)
                {
                    var child = OpenDirectory(level.Folder, raw, path);
                    stack.Add(Level.Read(child, path, raw));
                    continue;
                }

                // Too deep to open another: moved up into the root, and emptied from there when the root's names are read again.
                MoveUp(level.Folder, raw, root, ref moved, path);
            }
        }
        finally
        {
            for (var i = stack.Count - 1; i > 0; i--)
            {
                stack[i].Folder.Dispose();
            }
        }
    }

    /// <summary>One open folder of <see cref="EmptyFolder(SafeDirectory, string)"/>'s walk: a batch of its names, their kinds, the next to take, and its name in its parent (null for the root).</summary>
    private readonly record struct Level(SafeDirectory Folder, List<byte[]> Names, List<UnixFileKind?> Kinds, int Next, byte[]? Name)
    {
        public static Level Read(SafeDirectory folder, string path, byte[]? name)
        {
            var kinds = new List<UnixFileKind?>();
            return new(folder, ReadNames(folder, path, NameBatch, kinds), kinds, 0, name);
        }

        public Level Done() => this with { Names = [], Kinds = [], Next = 0 };
    }

    /// <summary>Moves a folder into <paramref name="root"/> under a name not taken there.</summary>
    private static void MoveUp(SafeDirectory parent, byte[] name, SafeDirectory root, ref long moved, string shownAs)
    {
        while (true)
        {
            var up = System.Text.Encoding.ASCII.GetBytes($".pipelines-deep-{moved++}");
            fixed (byte* from = Terminated(name))
            fixed (byte* to = Terminated(up))
            {
                if (RenameAt2(parent.Fd, from, root.Fd, to, RenameNoReplace) == 0)
                {
                    return;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != EEXIST)
                {
                    throw Error("cannot move up a deeply nested folder in", shownAs, errno);
                }
            }
        }
    }

    /// <summary>
    /// Moves every entry of one folder into another (renameat2, never replacing a name there),
    /// whatever the entries are and whatever their names: a link is moved as the link, a folder
    /// with all it holds, nothing is opened or followed. Both folders must be on one file system.
    /// </summary>
    public static void MoveEntries(string from, string to)
    {
        using var source = OpenDirectory(from);
        using var target = OpenDirectory(to);
        MoveEntries(source, from, target, to);
    }

    /// <summary>
    /// <see cref="MoveEntries(string, string)"/> between open folders (a warm container's, held
    /// open for its life, on either side), named <paramref name="from"/> and <paramref name="to"/>
    /// in messages; both are left open.
    /// </summary>
    public static void MoveEntries(SafeDirectory source, string from, SafeDirectory target, string to)
    {
        // A batch at a time: each batch leaves the source, so the next read gives what is left;
        // a batch short of NameBatch was all there was (nothing else writes in the folder).
        for (var names = ReadNames(source, from, NameBatch); names.Count > 0; names = names.Count < NameBatch ? [] : ReadNames(source, from, NameBatch))
        {
            foreach (var name in names)
            {
                fixed (byte* n = Terminated(name))
                {
                    if (RenameAt2(source.Fd, n, target.Fd, n, RenameNoReplace) != 0)
                    {
                        throw Error("cannot move", Path.Combine(from, System.Text.Encoding.UTF8.GetString(name)) + " to " + to);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Moves one entry, named <paramref name="name"/> in <paramref name="from"/>, into an open
    /// folder under the same name (renameat2, never replacing a name there): the entry itself,
    /// whatever it is, not followed. <paramref name="from"/> is walked by its path: only for a
    /// folder the engine alone writes in and whose names it knows (a task's scratch in/), which
    /// spares the listing <see cref="MoveEntries(SafeDirectory, string, SafeDirectory, string)"/> reads.
    /// </summary>
    public static void MoveEntry(string from, string name, SafeDirectory target, string to)
    {
        fixed (byte* source = Terminated(System.Text.Encoding.UTF8.GetBytes(Path.Combine(from, name))))
        fixed (byte* n = Terminated(System.Text.Encoding.UTF8.GetBytes(name)))
        {
            if (RenameAt2(AtFdCwd, source, target.Fd, n, RenameNoReplace) != 0)
            {
                throw Error("cannot move", Path.Combine(from, name) + " to " + to);
            }
        }
    }

    /// <summary>
    /// An open folder's inode flags (chattr's: FS_IOC_GETFLAGS), or null where its file system
    /// has none; <see cref="ResetFolder"/> puts them back as they were.
    /// </summary>
    public static int? InodeFlags(SafeDirectory folder)
    {
        var flags = 0;
        return IoctlInt(folder.Fd, FsIocGetFlags, &flags) == 0 ? flags : null;
    }

    /// <summary>
    /// Gives an open folder that a container's user owns (a warm container's /out and control
    /// folder, kept for its life and only emptied between requests) back what that user may set on
    /// it, by descriptor (no path is looked up): no extended attributes (an ACL is one), its inode
    /// flags as <paramref name="flags"/> (<see cref="InodeFlags"/> when it was made; the owner may
    /// set sync, dirsync, noatime, nodump, projinherit...), the <paramref name="mode"/>, and its
    /// times now. Kept, they would carry one request's data to the next caller's (ForkModeTests).
    /// </summary>
    public static void ResetFolder(SafeDirectory folder, UnixFileMode mode, int? flags, string shownAs)
    {
        if (flags is { } wanted && InodeFlags(folder) is { } now && now != wanted && IoctlInt(folder.Fd, FsIocSetFlags, &wanted) != 0)
        {
            throw Error("cannot set the inode flags of", shownAs);
        }

        var size = FListXattr(folder.Fd, null, 0);
        if (size < 0 && Marshal.GetLastPInvokeError() != EOpNotSupp)
        {
            throw Error("cannot list the extended attributes of", shownAs);
        }

        if (size > 0)
        {
            var names = new byte[size];
            fixed (byte* list = names)
            {
                size = FListXattr(folder.Fd, list, (nuint)names.Length);
                if (size < 0)
                {
                    throw Error("cannot list the extended attributes of", shownAs);
                }

                for (var start = 0; start < size;)
                {
                    var end = Array.IndexOf(names, (byte)0, start, (int)size - start);
                    end = end < 0 ? (int)size : end;
                    if (end > start && FRemoveXattr(folder.Fd, list + start) != 0 && Marshal.GetLastPInvokeError() != ENoData)
                    {
                        throw Error($"cannot remove the extended attribute {System.Text.Encoding.UTF8.GetString(names, start, end - start)} of", shownAs);
                    }

                    start = end + 1;
                }
            }
        }

        if (FChmod(folder.Fd, (uint)mode) != 0)
        {
            throw Error("cannot set the mode of", shownAs);
        }

        if (FUtimens(folder.Fd, null) != 0)
        {
            throw Error("cannot set the times of", shownAs);
        }
    }

    // _IOR('f', 1, long) and _IOW('f', 2, long): the same numbers on x86-64 and arm64; the kernel reads an int.
    private const nuint FsIocGetFlags = 0x80086601;
    private const nuint FsIocSetFlags = 0x40086602;

    private const int ENoData = 61;
    private const int EOpNotSupp = 95;

    /// <summary>
    /// Makes a new file in an open folder with exactly <paramref name="mode"/> (whatever the
    /// process's umask) and opens it for writing: never through a link, and never a name that is
    /// there already (O_EXCL).
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle CreateFile(SafeDirectory parent, string name, UnixFileMode mode, string shownAs)
    {
        var fd = OpenAtNative(parent.Fd, name, OWrOnly | OCreat | OExcl | ONoFollow | OCloExec, (int)mode);
        if (fd < 0)
        {
            throw Error("cannot make", shownAs);
        }

        var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        if (FChmod(fd, (uint)mode) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            throw Error("cannot set the mode of", shownAs, errno);
        }

        return handle;
    }

    /// <summary>Free and total bytes of the file system that holds a path (statvfs).</summary>
    public static (long Free, long Total) Space(string path)
    {
        var drive = new DriveInfo(path);
        return (drive.AvailableFreeSpace, drive.TotalSize);
    }

    /// <summary>How a kind is named in the messages about a container's /out.</summary>
    public static string Describe(UnixFileKind kind) => kind == UnixFileKind.SymbolicLink
        ? "a symbolic link, which is never followed"
        : kind == UnixFileKind.Fifo ? "a named pipe" : UnixFile.Describe(kind);

    private static UnixFileStatus StatDescriptor(int fd, string shownAs) =>
        UnixFile.TryStat(fd, out var status, out var errno) ? status : throw Error("cannot look at", shownAs, errno);

    private static int OpenAtNative(int dirFd, string name, int flags, int mode)
    {
        fixed (byte* n = Terminated(System.Text.Encoding.UTF8.GetBytes(name)))
        {
            return OpenAtNative(dirFd, n, flags, mode);
        }
    }

    private static int OpenAt(int dirFd, byte[] name, int flags)
    {
        fixed (byte* n = Terminated(name))
        {
            return OpenAtNative(dirFd, n, flags, 0);
        }
    }

    private static byte[] Terminated(byte[] name)
    {
        var z = new byte[name.Length + 1];
        name.CopyTo(z, 0);
        return z;
    }

    private static PipelinesException Error(string what, string shownAs, int? errno = null)
    {
        var code = errno ?? Marshal.GetLastPInvokeError();
        return new PipelinesException($"{what} {shownAs}: {Marshal.GetPInvokeErrorMessage(code)}", retryHelps: false);
    }

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true)]
    private static partial int OpenAtNative(int dirFd, byte* path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    private static partial int FChmod(int fd, uint mode);

    [LibraryImport("libc", EntryPoint = "flistxattr", SetLastError = true)]
    private static partial nint FListXattr(int fd, byte* list, nuint size);

    [LibraryImport("libc", EntryPoint = "fremovexattr", SetLastError = true)]
    private static partial int FRemoveXattr(int fd, byte* name);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlInt(int fd, nuint request, int* value);

    [LibraryImport("libc", EntryPoint = "futimens", SetLastError = true)]
    private static partial int FUtimens(int fd, void* times);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static partial int Statx(int dirFd, byte* path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "renameat2", SetLastError = true)]
    private static partial int RenameAt2(int oldDirFd, byte* oldPath, int newDirFd, byte* newPath, uint flags);

    [LibraryImport("libc", EntryPoint = "unlinkat", SetLastError = true)]
    private static partial int UnlinkAt(int dirFd, byte* path, int flags);

    [LibraryImport("libc", EntryPoint = "getdents64", SetLastError = true)]
    private static partial nint GetDents64(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LSeek(int fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    /// <summary>An open folder descriptor, closed on dispose.</summary>
    public sealed class SafeDirectory(int fd) : IDisposable
    {
        public int Fd { get; private set; } = fd;

        /// <summary>Whether its entries were read (its offset is then not at the start).</summary>
        internal bool Read { get; set; }

        public void Dispose()
        {
            if (Fd >= 0)
            {
                _ = Close(Fd);
                Fd = -1;
            }
        }
    }
}
