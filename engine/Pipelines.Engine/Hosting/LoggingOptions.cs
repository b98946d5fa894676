using Pipelines.Settings;

namespace Pipelines.Hosting;

/// <summary>How every role logs (configuration section Logging; --log-format sets Format).</summary>
public sealed record LoggingOptions
{
    /// <summary>text, or json (one object per line, with the run, task, attempt, trace and span ids as scopes).</summary>
    [OneOf("text", "json")]
    public string Format { get; init; } = "text";
}
