using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Pipelines.Runs;
using Pipelines.Storage;

namespace Pipelines.Gather;

/// <summary>
/// A run's run.json: what the gather writes last and what every front end reads back. The
/// property names and their order are the file format; <see cref="ToJson"/> writes it and
/// <see cref="FromJson"/> reads it, here and nowhere else.
/// </summary>
public sealed record RunSummary
{
    [JsonPropertyName("run_id")]
    public required string RunId { get; init; }

    [JsonPropertyName("workflow")]
    public required string Workflow { get; init; }

    /// <summary>The run's end state as named in the run store: succeeded, failed or cancelled.</summary>
    [JsonPropertyName("status")]
    public required string Status { get; init; }

    [JsonPropertyName("error")]
    public string? Error { get; init; }

    [JsonPropertyName("counts")]
    public required RunSummaryCounts Counts { get; init; }

    /// <summary>Each gathered table by its gather's name, in the workflow's order.</summary>
    [JsonPropertyName("results")]
    public IReadOnlyDictionary<string, RunSummaryTable> Results { get; init; } = new Dictionary<string, RunSummaryTable>();

    /// <summary>The malformed table parts that were left out of the results.</summary>
    [JsonPropertyName("problems")]
    public IReadOnlyList<string> Problems { get; init; } = [];

    [JsonPropertyName("warnings")]
    public IReadOnlyList<string> Warnings { get; init; } = [];

    [JsonPropertyName("created_at")]
    [JsonConverter(typeof(RoundTripTimeConverter))]
    public required DateTimeOffset CreatedAt { get; init; }

    [JsonPropertyName("finished_at")]
    [JsonConverter(typeof(RoundTripTimeConverter))]
    public required DateTimeOffset FinishedAt { get; init; }

    [JsonPropertyName("duration_seconds")]
    public double DurationSeconds { get; init; }

    [JsonPropertyName("input_uri")]
    public required string InputUri { get; init; }

    [JsonPropertyName("output_uri")]
    public required string OutputUri { get; init; }

    /// <summary>Each image the workflow names, with the digest it was pinned to at submission.</summary>
    [JsonPropertyName("images")]
    public IReadOnlyDictionary<string, string> Images { get; init; } = new Dictionary<string, string>();

    [JsonPropertyName("engine")]
    public required RunSummaryEngine Engine { get; init; }

    /// <summary>
    /// The run's trace (W3C trace id, 32 hex digits): its submission, tasks and gather are spans
    /// of it (docs/operations.md). Left out for runs of older engines.
    /// </summary>
    [JsonPropertyName("trace_id")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? TraceId { get; init; }

    /// <summary>
    /// What the run's task deliveries used and what it cost (the usage ledger's records of the run,
    /// priced by its tenant's sheet; docs/provenance.md). Left out for runs of older engines.
    /// </summary>
    [JsonPropertyName("usage")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Usage.RunUsage? Usage { get; init; }

    /// <summary>run.json's bytes: indented, and escaped as the first writer escaped them (the default encoder).</summary>
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, GatherJson.Default.RunSummary);

    /// <summary>Reads run.json; the lists that older runs lack (problems, warnings) read as empty.</summary>
    public static RunSummary FromJson(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, GatherJson.Default.RunSummary)
        ?? throw new JsonException("run.json is null, not a run summary");

    /// <summary>Reads the run.json of a run folder; <see cref="ObjectNotFoundException"/> when the run wrote none (yet).</summary>
    public static async Task<RunSummary> ReadAsync(StorageLocation runFolder, CancellationToken cancellationToken) =>
        FromJson(await runFolder.Store.ReadAllAsync(runFolder.Key(RunLayout.RunJson), cancellationToken).ConfigureAwait(false));

    /// <summary>
    /// The times as run.json has always held them (<c>2026-12-01T09:45:47.4025001Z</c>, the round-trip
    /// format in UTC); the serializer's own format would drop trailing zeros and write +00:00.
    /// </summary>
    internal sealed class RoundTripTimeConverter : JsonConverter<DateTimeOffset>
    {
        public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            DateTimeOffset.Parse(reader.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);

        public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
    }
}

/// <summary>run.json's task counts; inputs is the number of input files over all tasks.</summary>
public sealed record RunSummaryCounts(
    [property: JsonPropertyName("tasks")] int Tasks,
    [property: JsonPropertyName("succeeded")] int Succeeded,
    [property: JsonPropertyName("cached")] int Cached,
    [property: JsonPropertyName("failed")] int Failed,
    [property: JsonPropertyName("cancelled")] int Cancelled,
    [property: JsonPropertyName("split")] int Split,
    [property: JsonPropertyName("inputs")] int Inputs);

/// <summary>One gathered table in run.json: its row count and the files written, relative to the run folder.</summary>
public sealed record RunSummaryTable(
    [property: JsonPropertyName("rows")] long Rows,
    [property: JsonPropertyName("files")] IReadOnlyList<string> Files);

/// <summary>The engine that wrote run.json.</summary>
public sealed record RunSummaryEngine(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("version")] string Version);
