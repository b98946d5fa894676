namespace Pipelines.Functions;

/// <summary>The content type of an output file from its extension, when the function file declares none.</summary>
public static class ContentTypes
{
    private static readonly Dictionary<string, string> ByExtension = new(StringComparer.OrdinalIgnoreCase)
    {
        [".txt"] = "text/plain; charset=utf-8",
        [".log"] = "text/plain; charset=utf-8",
        [".tsv"] = "text/tab-separated-values; charset=utf-8",
        [".csv"] = "text/csv; charset=utf-8",
        [".json"] = "application/json",
        [".xml"] = "application/xml",
        [".html"] = "text/html; charset=utf-8",
        [".yaml"] = "application/yaml",
        [".yml"] = "application/yaml",
        [".png"] = "image/png",
        [".jpg"] = "image/jpeg",
        [".jpeg"] = "image/jpeg",
        [".gif"] = "image/gif",
        [".webp"] = "image/webp",
        [".svg"] = "image/svg+xml",
        [".tif"] = "image/tiff",
        [".tiff"] = "image/tiff",
        [".pdf"] = "application/pdf",
        [".parquet"] = "application/vnd.apache.parquet",
        [".gz"] = "application/gzip",
        [".zip"] = "application/zip",
        [".fastq"] = "text/plain; charset=utf-8",
        [".fq"] = "text/plain; charset=utf-8",
        [".fasta"] = "text/plain; charset=utf-8",
    };

    public const string Binary = "application/octet-stream";

    public static string FromName(string name) => ByExtension.TryGetValue(Path.GetExtension(name), out var t) ? t : Binary;
}
