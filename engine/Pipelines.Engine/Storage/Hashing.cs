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
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var md = md5 ? IncrementalHash.CreateHash(HashAlgorithmName.MD5) : null;
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            long total = 0;
            int read;
            // On Linux a FileStream's async read or write is the same blocking call run on the
            // thread pool, one hop each; a local file is read and written directly instead.
            while ((read = source is FileStream ? source.Read(buffer, 0, BufferSize) : await source.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken).ConfigureAwait(false)) > 0)
            {
                sha.AppendData(buffer, 0, read);
                md?.AppendData(buffer, 0, read);
                if (destination is FileStream)
                {
                    destination.Write(buffer, 0, read);
                }
                else
                {
                    await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                }

                total += read;
            }

            return new FileDigest(total, Convert.ToHexStringLower(sha.GetHashAndReset()), md is null ? null : Convert.ToHexStringLower(md.GetHashAndReset()));
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
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var md = md5 ? IncrementalHash.CreateHash(HashAlgorithmName.MD5) : null;
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            long total = 0;
            int read;
            while ((read = UnixFile.ReadAt(file, buffer.AsSpan(0, BufferSize), total)) > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                sha.AppendData(buffer, 0, read);
                md?.AppendData(buffer, 0, read);
                total += read;
            }

            return new FileDigest(total, Convert.ToHexStringLower(sha.GetHashAndReset()), md is null ? null : Convert.ToHexStringLower(md.GetHashAndReset()));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public static string Sha256Hex(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));
}
