using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Pipelines.Storage;

/// <summary>What kind of file system entry a path names.</summary>
internal enum UnixFileKind
{
    Regular,
    Directory,
    SymbolicLink,
    Fifo,
    Socket,
    CharacterDevice,
    BlockDevice,
    Other,
}

/// <summary>
/// The parts of a stat the engine needs: kind, apparent size, the device and inode that identify a
/// folder, the bytes allocated on disk, and the change and modification times (ns since the epoch)
/// that tell a local input's remembered hash still holds, the number of names, and the permission bits.
/// </summary>
internal readonly record struct UnixFileStatus(UnixFileKind Kind, long Size, ulong Device, ulong Inode, long Allocated, long ChangeTimeNs = 0, long ModifyTimeNs = 0, uint Links = 1, uint Mode = 0);

/// <summary>
/// stat(2) through statx, whose struct has one layout on every architecture. .NET's FileInfo
/// tells neither a fifo from a file nor a folder's inode, and the listing needs both: a fifo
/// must be refused before anything opens it (open blocks), and folder links are followed with
/// loop detection by device and inode.
/// </summary>
internal static partial class UnixFile
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7ff;

    public const int ENOENT = 2;
    public const int EACCES = 13;
    public const int ENOTDIR = 20;
    public const int ENAMETOOLONG = 36;
    public const int ELOOP = 40;

    /// <summary>The entry's status, following symbolic links or not; on failure, the errno.</summary>
    public static bool TryStat(string path, bool followLinks, out UnixFileStatus status, out int errno) =>
        TryStatx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, out status, out errno);

    /// <summary>The status of an open file (statx of the descriptor itself, AT_EMPTY_PATH); on failure, the errno.</summary>
    public static bool TryStat(int fd, out UnixFileStatus status, out int errno) =>
        TryStatx(fd, "", AtEmptyPath, out status, out errno);

    private static bool TryStatx(int dirFd, string path, int flags, out UnixFileStatus status, out int errno)
    {
        Span<byte> buffer = stackalloc byte[256];
        if (Statx(dirFd, path, flags, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            status = default;
            return false;
        }

        status = Parse(buffer);
        errno = 0;
        return true;
    }

    /// <summary>Reads a struct statx (one layout on every architecture).</summary>
    public static UnixFileStatus Parse(ReadOnlySpan<byte> buffer)
    {
        // stx_nlink (u32) at 16, stx_mode (u16) at 28, stx_ino at 32, stx_size at 40, stx_blocks (512-byte units) at 48,
        // stx_ctime and stx_mtime (s64 seconds, u32 nanoseconds) at 96 and 112, stx_dev_major/minor at 136/140.
        var mode = BinaryPrimitives.ReadUInt16LittleEndian(buffer[28..]);
        var kind = (mode & 0xF000) switch
        {
            0x8000 => UnixFileKind.Regular,
            0x4000 => UnixFileKind.Directory,
            0xA000 => UnixFileKind.SymbolicLink,
            0x1000 => UnixFileKind.Fifo,
            0xC000 => UnixFileKind.Socket,
            0x2000 => UnixFileKind.CharacterDevice,
            0x6000 => UnixFileKind.BlockDevice,
            _ => UnixFileKind.Other,
        };
        var device = ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(buffer[136..]) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(buffer[140..]);
        return new UnixFileStatus(
            kind,
            (long)BinaryPrimitives.ReadUInt64LittleEndian(buffer[40..]),
            device,
            BinaryPrimitives.ReadUInt64LittleEndian(buffer[32..]),
            (long)BinaryPrimitives.ReadUInt64LittleEndian(buffer[48..]) * 512,
            Nanoseconds(buffer[96..]),
            Nanoseconds(buffer[112..]),
            BinaryPrimitives.ReadUInt32LittleEndian(buffer[16..]),
            (uint)(mode & 0xFFF));
    }

    private static long Nanoseconds(ReadOnlySpan<byte> timestamp) =>
        (BinaryPrimitives.ReadInt64LittleEndian(timestamp) * 1_000_000_000) + BinaryPrimitives.ReadUInt32LittleEndian(timestamp[8..]);

    /// <summary>How a kind is named in messages.</summary>
    public static string Describe(UnixFileKind kind) => kind switch
    {
        UnixFileKind.Fifo => "a named pipe (fifo)",
        UnixFileKind.Socket => "a socket",
        UnixFileKind.CharacterDevice => "a character device",
        UnixFileKind.BlockDevice => "a block device",
        UnixFileKind.Directory => "a folder",
        UnixFileKind.SymbolicLink => "a symbolic link",
        UnixFileKind.Regular => "a file",
        _ => "not a regular file",
    };

    /// <summary>
    /// Writes a new file whole: open (O_CREAT | O_EXCL: never an existing file, nor through a
    /// link), write, close, and nothing else (a FileStream adds a lock, a truncate and a look at
    /// the file system). 0, or the errno; a file begun and not finished is removed.
    /// </summary>
    public static int WriteNew(string path, ReadOnlySpan<byte> content)
    {
        var errno = WriteOpen(path, OWrOnly | OCreat | OExcl | OCloExec, content, out var opened);
        if (errno != 0 && opened)
        {
            _ = Unlink(path);
        }

        return errno;
    }

    /// <summary>
    /// Reads into <paramref name="buffer"/> at <paramref name="offset"/> by one pread (RandomAccess
    /// looks at a descriptor it did not open with an lseek first); the bytes read, 0 at the end.
    /// </summary>
    public static int ReadAt(Microsoft.Win32.SafeHandles.SafeFileHandle file, Span<byte> buffer, long offset)
    {
        while (true)
        {
            var read = PRead((int)file.DangerousGetHandle(), ref MemoryMarshal.GetReference(buffer), (nuint)buffer.Length, offset);
            if (read >= 0)
            {
                return (int)read;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                throw new IOException($"cannot read: {Marshal.GetPInvokeErrorMessage(errno)}");
            }
        }
    }

    private static int WriteOpen(string path, int flags, ReadOnlySpan<byte> content, out bool opened)
    {
        var fd = Open(path, flags, 0b110_110_110);
        opened = fd >= 0;
        if (fd < 0)
        {
            return Marshal.GetLastPInvokeError();
        }

        var errno = 0;
        while (!content.IsEmpty)
        {
            var written = Write(fd, ref MemoryMarshal.GetReference(content), (nuint)content.Length);
            if (written < 0)
            {
                errno = Marshal.GetLastPInvokeError();
                if (errno == EINTR)
                {
                    errno = 0;
                    continue;
                }

                break;
            }

            content = content[(int)written..];
        }

        if (Close(fd) != 0 && errno == 0)
        {
            errno = Marshal.GetLastPInvokeError();
        }

        return errno;
    }

    /// <summary>
    /// Opens a file for reading by one open call (no lock, no look at the file system), through a
    /// link at its last name only with <paramref name="followLinks"/>, and with
    /// <paramref name="nonBlocking"/> without waiting on a fifo (O_NONBLOCK: its caller looks at
    /// what it opened). A missing file throws FileNotFoundException, as a FileStream's open does;
    /// any other failure an IOException.
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle OpenRead(string path, bool followLinks = false, bool nonBlocking = false)
    {
        var fd = Open(path, ORdOnly | (followLinks ? 0 : ONoFollow) | (nonBlocking ? ONonBlock : 0) | OCloExec, 0);
        if (fd >= 0)
        {
            return new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        }

        var errno = Marshal.GetLastPInvokeError();
        var message = $"cannot open {path}: {Marshal.GetPInvokeErrorMessage(errno)}";
        throw errno switch
        {
            ENOENT => new FileNotFoundException(message, path),
            EACCES => new UnauthorizedAccessException(message),
            _ => new IOException(message),
        };
    }

    /// <summary>
    /// Whether an open file has any extended attribute (an ACL is one), or cannot say (flistxattr
    /// failed): such a file is copied, never taken as it is (LocalObjectStore.AdoptAsync).
    /// </summary>
    public static bool HasExtendedAttributes(Microsoft.Win32.SafeHandles.SafeFileHandle file) =>
        FListXattr((int)file.DangerousGetHandle(), IntPtr.Zero, 0) != 0;

    /// <summary>Removes a file that may not be there (a temporary file given up), whatever stands in the way: nothing to say if it cannot.</summary>
    public static void Discard(string path) => _ = Unlink(path);

    public const int EINTR = 4;
    public const int EEXIST = 17;

    // Flag values differ between architectures for O_NOFOLLOW (asm-generic vs x86).
    private const int ORdOnly = 0;
    private const int OWrOnly = 1;
    private const int OCreat = 0x40;
    private const int OExcl = 0x80;
    private const int ONonBlock = 0x800;
    private const int OCloExec = 0x80000;
    private static readonly int ONoFollow = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x8000 : 0x20000;

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "pread", SetLastError = true)]
    private static partial nint PRead(int fd, ref byte buffer, nuint count, long offset);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint Write(int fd, ref byte buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "flistxattr", SetLastError = true)]
    private static partial nint FListXattr(int fd, IntPtr list, nuint size);

    [LibraryImport("libc", EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Unlink(string path);
}
