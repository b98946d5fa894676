using System.Text.Json.Serialization;
using Pipelines.RunStore;

namespace Pipelines.Tests.Support;

/// <summary>
/// A provenance row as engines before the resource and image-load columns wrote it (the names
/// tasks.parquet gives them): a file of these is an older engine's tasks.parquet.
/// </summary>
public sealed class OlderProvenanceRow(ProvenanceRow p)
{
    [JsonPropertyName("run_id")] public string RunId { get; set; } = p.RunId;
    [JsonPropertyName("task_id")] public string TaskId { get; set; } = p.TaskId;
    [JsonPropertyName("task_index")] public int TaskIndex { get; set; } = p.TaskIndex;
    [JsonPropertyName("attempt")] public int Attempt { get; set; } = p.Attempt;
    [JsonPropertyName("step")] public string Step { get; set; } = p.Step;
    [JsonPropertyName("status")] public string Status { get; set; } = p.Status;
    [JsonPropertyName("exit_code")] public long? ExitCode { get; set; } = p.ExitCode;
    [JsonPropertyName("image")] public string Image { get; set; } = p.Image;
    [JsonPropertyName("image_digest")] public string ImageDigest { get; set; } = p.ImageDigest;
    [JsonPropertyName("command")] public List<string> Command { get; set; } = p.Command;
    [JsonPropertyName("inputs")] public List<FileRef> Inputs { get; set; } = p.Inputs;
    [JsonPropertyName("outputs")] public List<FileRef> Outputs { get; set; } = p.Outputs;
    [JsonPropertyName("log")] public string? Log { get; set; } = p.Log;
    [JsonPropertyName("started_at")] public DateTime StartedAt { get; set; } = p.StartedAt;
    [JsonPropertyName("finished_at")] public DateTime FinishedAt { get; set; } = p.FinishedAt;
    [JsonPropertyName("worker")] public string Worker { get; set; } = p.Worker;
    [JsonPropertyName("error")] public string? Error { get; set; } = p.Error;
    [JsonPropertyName("cached_from")] public string? CachedFrom { get; set; } = p.CachedFrom;
}
