using Microsoft.Extensions.Logging;

namespace Pipelines.Telemetry;

/// <summary>
/// The scopes every log line about a run, task, attempt or invocation carries, so that
/// <c>--log-format json</c> lines can be filtered by them (the trace and span ids come from the
/// current span: the logging set-up tracks activities). One home for their names.
/// </summary>
internal static class LogScopes
{
    /// <summary>A task's delivery: its run, index and task id.</summary>
    public static IDisposable? Task(ILogger log, string runId, int index, string? taskId = null) =>
        log.BeginScope(taskId is null
            ? new Dictionary<string, object?> { ["RunId"] = runId, ["TaskIndex"] = index }
            : new Dictionary<string, object?> { ["RunId"] = runId, ["TaskIndex"] = index, ["TaskId"] = taskId });

    /// <summary>One attempt of one step (inside a task's scope).</summary>
    public static IDisposable? Attempt(ILogger log, string step, int attempt) =>
        log.BeginScope(new Dictionary<string, object?> { ["Step"] = step, ["Attempt"] = attempt });

    /// <summary>Work on a whole run: its submission or its gather.</summary>
    public static IDisposable? Run(ILogger log, string runId) =>
        log.BeginScope(new Dictionary<string, object?> { ["RunId"] = runId });
}
