using Parquet.Serialization;
using Pipelines.RunStore;

namespace Pipelines.Tests.Support;

/// <summary>Reads the Parquet files a run wrote, with Parquet.Net's own reader.</summary>
public static class ParquetTables
{
    public static async Task<IList<IDictionary<string, object?>>> ReadAsync(byte[] bytes)
    {
        using var stream = new MemoryStream(bytes);
        var result = await ParquetSerializer.DeserializeUntypedAsync(stream);
        return result.Data.Select(d => (IDictionary<string, object?>)d).ToList();
    }

    public static async Task<IList<ProvenanceRow>> ProvenanceAsync(byte[] bytes)
    {
        using var stream = new MemoryStream(bytes);
        return (await ParquetSerializer.DeserializeAsync<ProvenanceRow>(stream)).Data;
    }
}
