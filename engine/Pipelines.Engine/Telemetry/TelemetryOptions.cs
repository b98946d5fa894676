using Microsoft.Extensions.Configuration;
using Pipelines.Settings;

namespace Pipelines.Telemetry;

/// <summary>The telemetry settings (configuration section Telemetry, docs/configuration.md), read once at start.</summary>
public sealed record TelemetryOptions
{
    /// <summary>Where and how metrics and traces are sent over OTLP (Telemetry:Otlp).</summary>
    public OtlpOptions Otlp { get; init; } = new();

    /// <summary>
    /// Whether this process reports the queue's depth and its oldest job's age, read from
    /// Hangfire's storage every <see cref="QueueInterval"/>. Off by default, on in `pipelines
    /// server` (<see cref="ServerDefaults"/>): one reporter is enough, and every worker reading
    /// it would cost the database.
    /// </summary>
    public bool QueueMetrics { get; init; }

    /// <summary>The one role with a default of its own: `pipelines server` reports the queue; a layer under every other source.</summary>
    public static IReadOnlyDictionary<string, string?> ServerDefaults { get; } = new Dictionary<string, string?> { ["Telemetry:QueueMetrics"] = "true" };

    /// <summary>How often the queue is read when this process reports it.</summary>
    [Positive]
    public TimeSpan QueueInterval { get; init; } = TimeSpan.FromSeconds(15);

    public bool ExportsOtlp => !string.IsNullOrWhiteSpace(Otlp.Endpoint) || !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"));

    public static TelemetryOptions From(IConfiguration config) => SettingsBinder.Bind<TelemetryOptions>(config, "Telemetry");
}

/// <summary>OTLP's endpoint and protocol (Telemetry:Otlp).</summary>
[SettingsSection]
public sealed record OtlpOptions
{
    /// <summary>
    /// Where to send metrics and traces (e.g. http://127.0.0.1:4317); unset: nowhere, unless
    /// OpenTelemetry's own OTEL_EXPORTER_OTLP_ENDPOINT is set.
    /// </summary>
    [Matches(@"^[A-Za-z][A-Za-z0-9+.-]*://[^\s/]+", "an absolute URL (e.g. http://127.0.0.1:4317)")]
    public string? Endpoint { get; init; }

    /// <summary>grpc (the default) or http/protobuf.</summary>
    [OneOf("grpc", "http/protobuf")]
    public string Protocol { get; init; } = "grpc";
}
