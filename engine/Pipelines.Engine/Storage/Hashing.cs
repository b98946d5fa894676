using System.Buffers;
using System.Security.Cryptography;

namespace Pipelines.Storage;

/// <summary>Copies a stream while computing sha256 (and md5, unless the caller needs none) of the bytes that pass.</summary>
internal static class Hashing
{
    private const int BufferSize = 81920;

    /// <remarks>
    /// <paramref name="md5"/> false leaves <see cref="FileDigest.Md5"/> null: the bytes of local
    /// files, whose content tag is their sha256 (<see cref="ContentTags"/>), need no md5, and
    /// planning and staging hash every small input file again (LocalHashCache). The buffer is
    /// pooled: a run over thousands of small files would otherwise allocate one per file.
    /// </remarks>
    public static async Task<FileDigest> CopyAsync(Stream source, Stream destination, CancellationToken cancellationToken, bool md5 = true)
    {
        using var digest = new Digest(md5);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            int read;
            // On Linux a FileStream's async read or write is the same blocking call run on the
            // thread pool, one hop each; a local file is read and written directly instead.
            while ((read = source is FileStream ? source.Read(buffer, 0, BufferSize) : await source.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken).ConfigureAwait(false)) > 0)
            {
                digest.Append(buffer, read);
                if (destination is FileStream)
                {
                    destination.Write(buffer, 0, read);
                }
                else
                {
                    await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                }
            }

            return digest.Result();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// The size and hashes of a file's bytes (a link followed). Opened by one open call, not a
    /// FileStream (which adds a lock and a look at the file system): planning and staging hash
    /// every small input file, and a FileStream's reads here were blocking calls all the same.
    /// </summary>
    public static Task<FileDigest> OfFileAsync(string path, CancellationToken cancellationToken, bool md5 = true)
    {
        using var file = UnixFile.OpenRead(path, followLinks: true);
        return Task.FromResult(OfHandle(file, md5, cancellationToken));
    }

    /// <summary>The size and hashes of an open file's bytes, read from its start through the descriptor.</summary>
    public static FileDigest OfHandle(Microsoft.Win32.SafeHandles.SafeFileHandle file, bool md5 = true, CancellationToken cancellationToken = default)
    {
        using var digest = new Digest(md5);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            int read;
            while ((read = UnixFile.ReadAt(file, buffer.AsSpan(0, BufferSize), digest.Size)) > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                digest.Append(buffer, read);
            }

            return digest.Result();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The sha256 (and md5, when asked) of the bytes appended so far, and their count.</summary>
    private sealed class Digest(bool md5) : IDisposable
    {
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly IncrementalHash? _md5 = md5 ? IncrementalHash.CreateHash(HashAlgorithmName.MD5) : null;

        public long Size { get; private set; }

        public void Append(byte[] buffer, int count)
        {
            _sha.AppendData(buffer, 0, count);
            _md5?.AppendData(buffer, 0, count);
            Size += count;
        }

        public FileDigest Result() =>
            new(Size, Convert.ToHexStringLower(_sha.GetHashAndReset()), _md5 is null ? null : Convert.ToHexStringLower(_md5.GetHashAndReset()));

        public void Dispose()
        {
            _sha.Dispose();
            _md5?.Dispose();
        }
    }

    public static string Sha256Hex(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));
}
