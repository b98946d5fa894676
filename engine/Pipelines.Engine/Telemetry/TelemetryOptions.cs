using Microsoft.Extensions.Configuration;

namespace Pipelines.Telemetry;

/// <summary>The telemetry settings (configuration section Telemetry, docs/configuration.md), read once at start.</summary>
public sealed record TelemetryOptions
{
    /// <summary>
    /// Where to send metrics and traces over OTLP (e.g. http://127.0.0.1:4317); unset: nowhere,
    /// unless OpenTelemetry's own OTEL_EXPORTER_OTLP_ENDPOINT is set.
    /// </summary>
    public string? OtlpEndpoint { get; init; }

    /// <summary>OTLP's protocol: grpc (the default) or http/protobuf.</summary>
    public string OtlpProtocol { get; init; } = "grpc";

    /// <summary>
    /// Whether this process reports the queue's depth and its oldest job's age, read from
    /// Hangfire's storage every <see cref="QueueInterval"/>. On in `pipelines server`, off in
    /// workers: one reporter is enough, and every worker reading it would cost the database.
    /// </summary>
    public bool? QueueMetrics { get; init; }

    /// <summary>How often the queue is read when this process reports it.</summary>
    public TimeSpan QueueInterval { get; init; } = TimeSpan.FromSeconds(15);

    public bool ExportsOtlp => !string.IsNullOrWhiteSpace(OtlpEndpoint) || !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"));

    public static TelemetryOptions From(IConfiguration config)
    {
        var section = config.GetSection("Telemetry");
        var options = new TelemetryOptions
        {
            OtlpEndpoint = section["Otlp:Endpoint"],
            OtlpProtocol = section["Otlp:Protocol"] ?? "grpc",
            QueueMetrics = section.GetValue<bool?>("QueueMetrics"),
            QueueInterval = section.GetValue("QueueInterval", TimeSpan.FromSeconds(15)),
        };
        if (options.OtlpProtocol is not ("grpc" or "http/protobuf"))
        {
            throw new PipelinesException($"Telemetry:Otlp:Protocol '{options.OtlpProtocol}': write grpc or http/protobuf", retryHelps: false);
        }

        if (options.OtlpEndpoint is { Length: > 0 } endpoint && !Uri.TryCreate(endpoint, UriKind.Absolute, out _))
        {
            throw new PipelinesException($"Telemetry:Otlp:Endpoint '{endpoint}' is not an absolute URL (e.g. http://127.0.0.1:4317)", retryHelps: false);
        }

        if (options.QueueInterval <= TimeSpan.Zero)
        {
            throw new PipelinesException("Telemetry:QueueInterval must be longer than 0 (e.g. 00:00:15)", retryHelps: false);
        }

        return options;
    }
}
