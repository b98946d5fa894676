using System.Diagnostics;

namespace Pipelines.Telemetry;

/// <summary>
/// The engine's spans (docs/operations.md, Tracing): one trace per run, from its submission
/// through every task, attempt, stage-in, container and stage-out to its gather, and one per
/// function invocation. A run's tasks run in other processes than its submission: the submission
/// keeps its span's context in the run's definition (<c>RunDefinition.TraceParent</c>, in the
/// run record), and every task and the gather start their spans under it, so a worker's spans
/// join the run's trace whichever process or delivery runs them. An async invocation carries its
/// context in its Hangfire job's parameters.
/// </summary>
internal static class EngineTracing
{
    /// <summary>The activity source's name, for exporters (TracerProviderBuilder.AddSource).</summary>
    public const string SourceName = "Pipelines";

    /// <summary>The Hangfire job parameter that carries a W3C traceparent.</summary>
    public const string JobParameter = "traceparent";

    internal static readonly ActivitySource Source = new(SourceName, EngineVersion.Current);

    // Span names: low-cardinality, what was done; the ids are attributes.
    internal const string Submit = "pipelines.run.submit";
    internal const string Plan = "pipelines.run.plan";
    internal const string Record = "pipelines.run.record";
    internal const string Enqueue = "pipelines.run.enqueue";
    internal const string Task = "pipelines.task";
    internal const string StageIn = "pipelines.task.stage_in";
    internal const string Attempt = "pipelines.step.attempt";
    internal const string Container = "pipelines.container";
    internal const string StageOut = "pipelines.task.stage_out";
    internal const string CacheCheck = "pipelines.task.cache_check";
    internal const string Claim = "pipelines.task.claim";
    internal const string Settle = "pipelines.task.settle";
    internal const string FanIn = "pipelines.task.fan_in";
    internal const string Gather = "pipelines.run.gather";
    internal const string GatherPrepare = "pipelines.gather.prepare";
    internal const string Invoke = "pipelines.function.invoke";

    /// <summary>A span under the current one (none without a listener: callers use <c>?.</c>).</summary>
    internal static Activity? Start(string name, ActivityKind kind = ActivityKind.Internal) => Source.StartActivity(name, kind);

    /// <summary>A span under a context carried from another process (a W3C traceparent), or under the current one without it.</summary>
    internal static Activity? StartUnder(string name, string? traceParent, ActivityKind kind = ActivityKind.Internal) =>
        ActivityContext.TryParse(traceParent, null, out var parent)
            ? Source.StartActivity(name, kind, parent)
            : Source.StartActivity(name, kind);

    /// <summary>The W3C traceparent of the current span, to carry to another process; null without one.</summary>
    public static string? CurrentParent() => Activity.Current is { IdFormat: ActivityIdFormat.W3C } a ? a.Id : null;

    /// <summary>The trace id in a traceparent (32 hex digits), or null when there is none.</summary>
    public static string? TraceIdOf(string? traceParent) =>
        ActivityContext.TryParse(traceParent, null, out var context) ? context.TraceId.ToHexString() : null;

    /// <summary>The current span's trace and span id, for a provenance row; nulls without a span.</summary>
    internal static (string? TraceId, string? SpanId) Current() =>
        Activity.Current is { } a ? (a.TraceId.ToHexString(), a.SpanId.ToHexString()) : (null, null);

    /// <summary>Marks a span failed with a reason the user can read (OpenTelemetry's error status).</summary>
    internal static void Failed(this Activity? span, string? reason)
    {
        if (span is not null && reason is not null)
        {
            span.SetStatus(ActivityStatusCode.Error, reason.Length > 512 ? reason[..512] : reason);
        }
    }
}
