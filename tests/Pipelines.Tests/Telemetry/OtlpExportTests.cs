using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Pipelines.Hosting;
using Pipelines.Telemetry;
using Pipelines.Tests.Harvest;

namespace Pipelines.Tests.Telemetry;

/// <summary>
/// With Telemetry:Otlp:Endpoint set, an engine host sends its spans and metrics over OTLP/HTTP
/// to a receiver on loopback that answers as a collector does (200 on its signal paths,
/// /v1/traces and /v1/metrics under its base URL; 404 elsewhere): each signal reaches its own
/// path, and what arrives holds the engine's span and metrics.
/// </summary>
[Integration]
public sealed class OtlpExportTests
{
    [Fact]
    public async Task Over_http_protobuf_spans_and_metrics_reach_the_collectors_signal_paths_under_its_base_url()
    {
        var port = FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var received = new List<(string Path, byte[] Body)>();
        var receiving = ReceiveAsync(listener, received);

        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Worker:Name"] = "otlp-test",
            ["Telemetry:Otlp:Endpoint"] = $"http://127.0.0.1:{port}/collector/",
            ["Telemetry:Otlp:Protocol"] = "http/protobuf",
        }).Build();
        using var host = EngineHost.Build(config, worker: false);
        await host.StartAsync();
        string traceId;
        try
        {
            using (var span = EngineTracing.Start(EngineTracing.Invoke))
            {
                Assert.NotNull(span);
                span.SetTag("pipelines.function", "otlp-export-test");
                traceId = span.TraceId.ToHexString();
            }

            Assert.True(host.Services.GetRequiredService<TracerProvider>().ForceFlush(30_000), "the spans were not exported");
            Assert.True(host.Services.GetRequiredService<MeterProvider>().ForceFlush(30_000), "the metrics were not exported");
        }
        finally
        {
            await host.StopAsync();
        }

        (string Path, byte[] Body)[] Posted(string path)
        {
            lock (received)
            {
                return received.Where(r => r.Path == path).ToArray();
            }
        }

        string Paths()
        {
            lock (received)
            {
                return "received: " + string.Join(", ", received.Select(r => r.Path));
            }
        }

        // The exporter has had its answers (ForceFlush waits for them); the list is the receiver's.
        var traces = await Eventually.WaitAsync(() => Task.FromResult(Posted("/collector/v1/traces") is { Length: > 0 } t ? t : null), () => "a POST to /collector/v1/traces; " + Paths());
        var metrics = await Eventually.WaitAsync(() => Task.FromResult(Posted("/collector/v1/metrics") is { Length: > 0 } m ? m : null), () => "a POST to /collector/v1/metrics; " + Paths());
        lock (received)
        {
            Assert.All(received, r => Assert.Contains(r.Path, new[] { "/collector/v1/traces", "/collector/v1/metrics" }));
        }

        // Protobuf keeps strings as UTF-8 and ids as raw bytes: the span with its trace id, the engine's counters.
        Assert.Contains(traces, t => Contains(t.Body, Encoding.UTF8.GetBytes("otlp-export-test")) && Contains(t.Body, Convert.FromHexString(traceId)) && Contains(t.Body, Encoding.UTF8.GetBytes(EngineTracing.Invoke)));
        Assert.Contains(metrics, m => Contains(m.Body, Encoding.UTF8.GetBytes("pipelines.tasks")) && Contains(m.Body, Encoding.UTF8.GetBytes("pipelines.outage.waits")));

        listener.Stop();
        await receiving;
    }

    private static async Task ReceiveAsync(HttpListener listener, List<(string Path, byte[] Body)> received)
    {
        while (true)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            var path = context.Request.Url!.AbsolutePath;
            lock (received)
            {
                received.Add((path, body.ToArray()));
            }

            // A collector's answer: an empty Export*ServiceResponse on its signal paths, 404 on any other.
            context.Response.StatusCode = path is "/collector/v1/traces" or "/collector/v1/metrics" ? 200 : 404;
            context.Response.ContentType = "application/x-protobuf";
            context.Response.Close();
        }
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
