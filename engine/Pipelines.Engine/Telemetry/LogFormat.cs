namespace Pipelines.Telemetry;

/// <summary>How log lines are written (Logging:Format, or --log-format): text for people, json for collectors.</summary>
public enum LogFormat
{
    /// <summary>One line per message: time, level, category, message.</summary>
    Text,

    /// <summary>One JSON object per line, with the scopes (run, task, attempt, trace) as properties.</summary>
    Json,
}
