using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Pipelines.Telemetry;

/// <summary>
/// OpenTelemetry for every host (docs/operations.md): the engine's meter and Npgsql's, the
/// engine's spans, exported over OTLP when Telemetry:Otlp:Endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT)
/// says where. Spans are made even without an exporter: their trace id is what run.json, the
/// provenance rows and the log lines carry. The Prometheus endpoint is added by the ASP.NET Core
/// hosts (`pipelines server`, and the worker's listener), which add their reader to this provider.
/// </summary>
internal static class TelemetryHosting
{
    /// <summary>Npgsql's own meter: its connection pool and failed commands (PostgreSQL errors).</summary>
    public const string NpgsqlMeter = "Npgsql";

    internal static void Add(IServiceCollection services, TelemetryOptions options, string workerName)
    {
        services.TryAddSingleton(options);
        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("pipelines", serviceVersion: EngineVersion.Current, serviceInstanceId: workerName))
            .WithTracing(t =>
            {
                // Always on, whatever the parent says: a run's or an invocation's spans are the
                // record its ids point at, and an unsampled parent (ASP.NET Core's request
                // activity, which nothing here records) must not drop them.
                t.AddSource(EngineTracing.SourceName).SetSampler(new AlwaysOnSampler());
                if (options.ExportsOtlp)
                {
                    t.AddOtlpExporter(o => Otlp(o, options, "v1/traces"));
                }
            })
            .WithMetrics(m =>
            {
                m.AddMeter(EngineMetrics.MeterName, NpgsqlMeter);
                if (options.ExportsOtlp)
                {
                    m.AddOtlpExporter(o => Otlp(o, options, "v1/metrics"));
                }
            });
    }

    /// <summary>
    /// Telemetry:Otlp:Endpoint is the collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is: over
    /// http/protobuf each signal goes to its own path under it (<paramref name="signalPath"/>,
    /// v1/traces or v1/metrics). The exporter appends that path only to an endpoint it read from
    /// the environment; one set here is used as it is, and both signals would go to the base URL,
    /// which a collector answers 404. gRPC names its service in the call, not in the URL.
    /// </summary>
    internal static void Otlp(OtlpExporterOptions o, TelemetryOptions options, string signalPath)
    {
        if (options.Otlp.Endpoint is { Length: > 0 } endpoint)
        {
            var grpc = string.Equals(options.Otlp.Protocol, "grpc", StringComparison.OrdinalIgnoreCase);
            o.Protocol = grpc ? OtlpExportProtocol.Grpc : OtlpExportProtocol.HttpProtobuf;
            o.Endpoint = grpc ? new Uri(endpoint) : new Uri(endpoint.TrimEnd('/') + "/" + signalPath);
        }
    }
}
