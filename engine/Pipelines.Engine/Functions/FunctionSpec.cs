using System.Text.Json;
using System.Text.Json.Serialization;
using Pipelines.Containers.Warm;
using Pipelines.Model;

namespace Pipelines.Functions;

/// <summary>A validated function file (see docs/functions.md): an image served warm, one request at a time or over HTTP.</summary>
public sealed record FunctionSpec(
    string Name,
    string? Description,
    string Image,
    WarmMode Mode,
    IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string> Env,
    IReadOnlyList<string> Secrets,
    Resources Resources,
    int Concurrency,
    int MinWarm,
    int Max,
    int Queue,
    TimeSpan IdleTimeout,
    long MaxRequestBytes,
    string? Output,
    string? ContentType)
{
    /// <summary>The default of max_request_size: 10 MiB.</summary>
    public const long DefaultMaxRequestBytes = 10L * 1024 * 1024;

    private static readonly JsonSerializerOptions Json = new()
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        WriteIndented = false,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static FunctionSpec FromJson(string json) =>
        JsonSerializer.Deserialize<FunctionSpec>(json, Json) ?? throw new PipelinesException("a stored function definition is empty", retryHelps: false);
}

/// <summary>The function file was refused before anything was deployed.</summary>
public sealed class FunctionInvalidException(string source, IReadOnlyList<WorkflowProblem> problems)
    : FileInvalidException(source, "function", problems);
