using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pipelines.Lineage;

/// <summary>What to explain: a task output, a task log or a gathered results file, and for a table one row (by number or by a key column's value).</summary>
public sealed record LineageRequest(string Uri, long? Row = null, string? Key = null, string? Column = null);

/// <summary>What produced a file of a run (or a row of a gathered table): the run, and each step of the task that made it.</summary>
public sealed record LineageAnswer
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    [JsonPropertyName("uri")]
    public required string Uri { get; init; }

    /// <summary>task output, task log, results table or results row.</summary>
    [JsonPropertyName("kind")]
    public required string Kind { get; init; }

    /// <summary>The file's key in the run folder.</summary>
    [JsonPropertyName("key")]
    public required string Key { get; init; }

    [JsonPropertyName("run")]
    public required LineageRun Run { get; init; }

    /// <summary>For a row of a gathered table: the row, its task, and the input file it comes from.</summary>
    [JsonPropertyName("row")]
    public LineageRow? Row { get; init; }

    /// <summary>For a whole gathered table: what contributed to it.</summary>
    [JsonPropertyName("table")]
    public LineageTable? Table { get; init; }

    /// <summary>The step attempt that produced the file first, then the earlier steps of the same task attempt (what it read).</summary>
    [JsonPropertyName("steps")]
    public IReadOnlyList<LineageStep> Steps { get; init; } = [];

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}

/// <summary>The run a file belongs to, and where the answer was read from (the run folder, or the run store for a run still going).</summary>
public sealed record LineageRun(
    [property: JsonPropertyName("run_id")] string RunId,
    [property: JsonPropertyName("workflow")] string Workflow,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("folder")] string Folder,
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("created_at")] DateTimeOffset? CreatedAt,
    [property: JsonPropertyName("finished_at")] DateTimeOffset? FinishedAt);

/// <summary>A row of a gathered table: its number (from 1), its cells, its task, the input file it comes from (null: from all the task's inputs together) and the part it was read from.</summary>
public sealed record LineageRow(
    [property: JsonPropertyName("number")] long Number,
    [property: JsonPropertyName("rows")] long Rows,
    [property: JsonPropertyName("cells")] IReadOnlyDictionary<string, string?> Cells,
    [property: JsonPropertyName("task_id")] string TaskId,
    [property: JsonPropertyName("source_file")] LineageFile? SourceFile,
    [property: JsonPropertyName("part")] string? Part);

/// <summary>A whole gathered table: its rows and the step attempts of the run, by step and status.</summary>
public sealed record LineageTable(
    [property: JsonPropertyName("rows")] long? Rows,
    [property: JsonPropertyName("attempts")] IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> Attempts,
    [property: JsonPropertyName("images")] IReadOnlyDictionary<string, string> Images);

/// <summary>A stored file with its size and sha256 (of the bytes stored).</summary>
public sealed record LineageFile(
    [property: JsonPropertyName("key")] string Key,
    [property: JsonPropertyName("size")] long? Size,
    [property: JsonPropertyName("sha256")] string? Sha256);

/// <summary>One step of one task attempt, as provenance/tasks.parquet records it.</summary>
public sealed record LineageStep(
    [property: JsonPropertyName("task_index")] int TaskIndex,
    [property: JsonPropertyName("task_id")] string TaskId,
    [property: JsonPropertyName("step")] string Step,
    [property: JsonPropertyName("attempt")] int Attempt,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("exit_code")] long? ExitCode,
    [property: JsonPropertyName("image")] string Image,
    [property: JsonPropertyName("image_digest")] string ImageDigest,
    [property: JsonPropertyName("command")] IReadOnlyList<string> Command,
    [property: JsonPropertyName("worker")] string Worker,
    [property: JsonPropertyName("started_at")] DateTime StartedAt,
    [property: JsonPropertyName("finished_at")] DateTime FinishedAt,
    [property: JsonPropertyName("log")] string? Log,
    [property: JsonPropertyName("cached_from")] string? CachedFrom,
    [property: JsonPropertyName("error")] string? Error,
    [property: JsonPropertyName("inputs")] IReadOnlyList<LineageFile> Inputs,
    [property: JsonPropertyName("outputs")] IReadOnlyList<LineageFile> Outputs)
{
    /// <summary>How the attempt got its image when the worker's engine lacked it (provenance's image_load); null when it was there.</summary>
    [JsonPropertyName("image_load")]
    public string? ImageLoad { get; init; }

    /// <summary>The seconds the attempt spent on it (provenance's image_load_seconds).</summary>
    [JsonPropertyName("image_load_seconds")]
    public double? ImageLoadSeconds { get; init; }
}
