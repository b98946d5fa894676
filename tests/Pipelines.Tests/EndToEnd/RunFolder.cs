using System.Security.Cryptography;
using System.Text.Json;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>What one run left in its output location, read back through the same store kinds a user would use.</summary>
public sealed class RunFolder(StorageLocation location)
{
    public StorageLocation Location { get; } = location;

    public static string RunIdFrom(CliRunner.Result result)
    {
        var line = result.Stdout.Split('\n').FirstOrDefault(l => l.StartsWith("run ", StringComparison.Ordinal))
            ?? throw new InvalidOperationException("no run id printed\n" + result);
        return line.Split(' ')[1].TrimEnd(':');
    }

    public Task<byte[]> ReadAsync(string key) => Location.Store.ReadAllAsync(Location.Key(key), CancellationToken.None);

    public async Task<JsonDocument> RunJsonAsync() => JsonDocument.Parse(await ReadAsync("run.json"));

    public async Task<IList<ProvenanceRow>> ProvenanceAsync() => await ParquetTables.ProvenanceAsync(await ReadAsync("provenance/tasks.parquet"));

    public async Task<IList<IDictionary<string, object?>>> ResultAsync(string name) => await ParquetTables.ReadAsync(await ReadAsync($"results/{name}.parquet"));

    public async Task<bool> ExistsAsync(string key) => await Location.Store.StatAsync(Location.Key(key), CancellationToken.None) is not null;

    /// <summary>Every output sha256 in the provenance is the sha256 of the bytes stored under its key.</summary>
    public async Task AssertOutputHashesAsync(IEnumerable<ProvenanceRow> rows)
    {
        foreach (var output in rows.SelectMany(r => r.Outputs))
        {
            var bytes = await ReadAsync(output.Key);
            Assert.Equal(output.Size, bytes.Length);
            Assert.Equal(output.Sha256, Convert.ToHexStringLower(SHA256.HashData(bytes)));
        }
    }
}
