using System.Globalization;
using System.IO.Compression;

namespace Pipelines.Tests.Support;

/// <summary>
/// An independent computation of what the fastq-stats image reports, to check gathered rows
/// against: reads, bases, GC fraction and mean Phred+33 quality of one FASTQ file.
/// </summary>
public static class FastqReference
{
    public sealed record Stats(long Reads, long Bases, string Gc, string MeanQuality);

    public static Stats Compute(string path)
    {
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var reader = new StreamReader(stream);
        long reads = 0, bases = 0, gc = 0, quality = 0;
        while (reader.ReadLine() is { } header)
        {
            if (header.Length == 0)
            {
                continue;
            }

            var seq = reader.ReadLine()!.TrimEnd('\r');
            reader.ReadLine();
            var qual = reader.ReadLine()!.TrimEnd('\r');
            reads++;
            bases += seq.Length;
            gc += seq.Count(c => c is 'G' or 'C');
            quality += qual.Sum(c => c - 33);
        }

        return new Stats(
            reads,
            bases,
            (bases == 0 ? 0 : (double)gc / bases).ToString("F6", CultureInfo.InvariantCulture),
            (bases == 0 ? 0 : (double)quality / bases).ToString("F4", CultureInfo.InvariantCulture));
    }
}
