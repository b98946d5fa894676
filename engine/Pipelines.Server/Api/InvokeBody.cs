using System.Buffers;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
using Pipelines.Functions;
using Pipelines.Model;

namespace Pipelines.Server.Api;

/// <summary>
/// An invoke request's body, streamed to files in a folder of its own, never held in memory:
/// the raw body is one file (named by ?filename= or its Content-Disposition, else "input"), a
/// multipart/form-data body one file per part under the part's validated file name. A body over
/// the function's max_request_size is refused as soon as it passes it. For a synchronous request
/// (<c>inMemory</c>) a raw body of a stated length of at most FunctionInvoker.SmallFile bytes is
/// held in memory instead (<see cref="InputPart.Content"/>): no file is made for it here.
/// </summary>
internal static class InvokeBody
{
    /// <summary>The body was refused: the status (400, 413) and why.</summary>
    public sealed class RefusedException(int status, string message) : Exception(message)
    {
        public int Status { get; } = status;
    }

    /// <summary>
    /// How much past the limit a body sent without a length is read (and dropped, through one
    /// pooled buffer) to give its real size in the 413: a body a little over the limit, the
    /// usual mistake, gets its exact size; one far over gets "more than" this much, and is not
    /// read to its end (a client may send a gigabyte).
    /// </summary>
    internal const long CountPast = 1024 * 1024;

    public static async Task<FunctionInput> ReadAsync(HttpRequest request, FunctionSpec spec, string folder, bool inMemory, CancellationToken ct)
    {
        var limit = spec.MaxRequestBytes;
        if (request.ContentLength > limit)
        {
            throw TooLarge(request.ContentLength.Value, null, limit);
        }

        // Kestrel's own limit (30 MB by default) is replaced by the function's and the stretch
        // counted past it; this reader counts and stops first.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
        {
            feature.MaxRequestBodySize = limit + CountPast + 1;
        }

        await using var body = new CountingStream(request.Body, limit);
        var files = new List<InputPart>();
        try
        {
            var isMultipart = MediaTypeHeaderValue.TryParse(request.ContentType, out var type)
                && type.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase);
            if (isMultipart && spec.Mode == Containers.Warm.WarmMode.Fork)
            {
                await ReadPartsAsync(body, type!, folder, files, ct).ConfigureAwait(false);
            }
            else
            {
                var name = spec.Mode == Containers.Warm.WarmMode.Http ? "body" : RawName(request);
                files.Add(inMemory && request.ContentLength is { } length && length <= FunctionInvoker.SmallFile
                    ? await HoldAsync(body, folder, name, (int)length, ct).ConfigureAwait(false)
                    : await SaveAsync(body, folder, name, ct).ConfigureAwait(false));
            }

            // Whatever follows the last part still counts and is hashed: the sha256 is of the body as sent.
            await body.CopyToAsync(Stream.Null, ct).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            // Kestrel's own limit (set just above what this reader counts) stopped a body sent
            // without a length: it counts what arrived, ahead of what was read here.
            throw TooLarge(null, Math.Max(body.Total, limit + CountPast), limit);
        }

        return new FunctionInput(folder, files, request.ContentType, body.Sha256(), body.Total);
    }

    private static string RawName(HttpRequest request)
    {
        string? name = request.Query["filename"];
        if (name is null && ContentDispositionHeaderValue.TryParse(request.Headers.ContentDisposition.ToString(), out var cd))
        {
            name = HeaderUtilities.RemoveQuotes(cd.FileNameStar.HasValue ? cd.FileNameStar : cd.FileName).Value;
        }

        name ??= InputNames.Default;
        return InputNames.Problem(name) is { } problem ? throw new RefusedException(400, "the input's file name " + problem) : name;
    }

    private static async Task ReadPartsAsync(Stream body, MediaTypeHeaderValue type, string folder, List<InputPart> files, CancellationToken ct)
    {
        var boundary = HeaderUtilities.RemoveQuotes(type.Boundary).Value;
        if (string.IsNullOrEmpty(boundary))
        {
            throw new RefusedException(400, "the multipart/form-data body has no boundary in its Content-Type");
        }

        var reader = new MultipartReader(boundary, body) { HeadersLengthLimit = 16 * 1024, BodyLengthLimit = null };
        var names = new HashSet<string>(StringComparer.Ordinal);
        MultipartSection? section;
        try
        {
            section = await reader.ReadNextSectionAsync(ct).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new RefusedException(400, "the multipart/form-data body cannot be read: " + e.Message);
        }

        var index = 0;
        while (section is not null)
        {
            if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var cd))
            {
                throw new RefusedException(400, $"part {index} of the multipart body has no Content-Disposition");
            }

            var raw = HeaderUtilities.RemoveQuotes(cd.FileNameStar.HasValue ? cd.FileNameStar : cd.FileName).Value;
            if (string.IsNullOrEmpty(raw))
            {
                throw new RefusedException(400, $"part {index} of the multipart body (field '{HeaderUtilities.RemoveQuotes(cd.Name).Value}') has no filename; each part is a file at /in/<filename>");
            }

            if (InputNames.Problem(raw) is { } problem)
            {
                throw new RefusedException(400, $"part {index}: the file name {problem}");
            }

            if (!names.Add(raw))
            {
                throw new RefusedException(400, $"part {index}: the file name '{raw}' is used by an earlier part");
            }

            files.Add(await SaveAsync(section.Body, folder, raw, ct).ConfigureAwait(false));
            index++;
            try
            {
                section = await reader.ReadNextSectionAsync(ct).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new RefusedException(400, "the multipart/form-data body cannot be read: " + e.Message);
            }
        }

        if (files.Count == 0)
        {
            throw new RefusedException(400, "the multipart/form-data body has no parts");
        }
    }

    /// <summary>
    /// A body of a stated length held in memory. What comes beyond the length is left to the
    /// caller's read to the end, which counts and hashes it, so a body longer than it said is
    /// refused as any other is (Kestrel itself ends a body at its Content-Length).
    /// </summary>
    private static async Task<InputPart> HoldAsync(Stream source, string folder, string name, int length, CancellationToken ct)
    {
        var content = new byte[length];
        var got = 0;
        while (got < length)
        {
            var read = await source.ReadAsync(content.AsMemory(got), ct).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            got += read;
        }

        // A body that ended short of its stated length is what came: Kestrel fails such a read itself.
        return new InputPart(name, Path.Combine(folder, name), got) { Content = got == length ? content : content[..got] };
    }

    private static async Task<InputPart> SaveAsync(Stream source, string folder, string name, CancellationToken ct)
    {
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, name);

        // Read from the network as it comes and written to the file directly: on Linux a FileStream's
        // async write is the same blocking call run on the thread pool, one hop per write.
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1);
        var buffer = ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            int read;
            while ((read = await source.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                file.Write(buffer, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return new InputPart(name, path, file.Length);
    }

    /// <summary>
    /// The 413: the body's real size (its Content-Length, or, sent without one, all of it counted
    /// when it ended within <see cref="CountPast"/> of the limit), else at least how much came, beside the limit, in bytes.
    /// </summary>
    private static RefusedException TooLarge(long? length, long? moreThan, long limit) => new(
        413,
        (length is { } n ? $"the body is {Quantities.FormatBytes(n)}"
            : moreThan is { } m ? $"the body is more than {Quantities.FormatBytes(m)} (sent without a Content-Length; read no further)"
            : "the body passed the limit")
        + $"; this function takes at most {Quantities.FormatBytes(limit)}"
        + (limit >= 1024 ? $" ({Quantities.FormatSize(limit)}, max_request_size in its file)" : " (max_request_size in its file)"));

    /// <summary>Counts and hashes what is read, and fails once more than the limit was read.</summary>
    private sealed class CountingStream(Stream inner, long limit) : Stream
    {
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public long Total { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => Total; set => throw new NotSupportedException(); }

        public string Sha256() => Convert.ToHexStringLower(_sha.GetHashAndReset());

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("read asynchronously");

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            Total += n;
            if (Total > limit)
            {
                await CountRestAsync(cancellationToken).ConfigureAwait(false);
            }

            _sha.AppendData(buffer.Span[..n]);
            return n;
        }

        /// <summary>Past the limit: the rest counted and dropped, up to <see cref="CountPast"/> more, for the 413's size.</summary>
        private async Task CountRestAsync(CancellationToken cancellationToken)
        {
            var scratch = ArrayPool<byte>.Shared.Rent(16 * 1024);
            try
            {
                while (Total <= limit + CountPast)
                {
                    var n = await inner.ReadAsync(scratch, cancellationToken).ConfigureAwait(false);
                    if (n == 0)
                    {
                        throw TooLarge(Total, null, limit);
                    }

                    Total += n;
                }
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                // Kestrel's limit, just past what is counted here.
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }

            throw TooLarge(null, limit + CountPast, limit);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _sha.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
