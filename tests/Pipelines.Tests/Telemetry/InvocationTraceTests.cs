using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Pipelines.Server;
using Pipelines.Telemetry;
using Pipelines.Tests.Harvest;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;
using Pipelines.Tests.Warm;

namespace Pipelines.Tests.Telemetry;

/// <summary>
/// One trace per function invocation: a synchronous and an asynchronous invocation through the
/// API of a real server (api and worker roles, in this process, on PostgreSQL and real warm
/// containers) each make a `pipelines.function.invoke` span, which an in-memory exporter
/// collects, and the invocation's log line is written inside it, naming its trace and span.
/// </summary>
[Collection(InProcessHangfire.Name)]
[Integration]
public sealed class InvocationTraceTests : IAsyncLifetime
{
    private readonly string _schema = TestEnvironment.NewName("itr_");
    private readonly TempFolder _temp = new();
    private readonly string _warmRoot = Path.Combine("/tmp", "it-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly List<Activity> _spans = [];
    private readonly CapturedLogs _logs = new();
    private TracerProvider _tracing = null!;
    private WebApplication _server = null!;
    private string _url = null!;

    public async Task InitializeAsync()
    {
        _tracing = Sdk.CreateTracerProviderBuilder().AddSource(EngineTracing.SourceName).SetSampler(new AlwaysOnSampler()).AddInMemoryExporter(_spans).Build()!;
        _url = $"http://127.0.0.1:{ServerProcess.FreePort()}";
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Postgres"] = TestEnvironment.Postgres,
            ["Schema"] = _schema,
            ["Hangfire:Schema"] = _schema + "_hangfire",
            ["Server:Roles"] = "api,worker",
            ["Worker:Name"] = "trace-worker",
            ["Worker:Concurrency"] = "1",
            ["Harvest:Policy"] = "always",
            ["Docker:WarmRoot"] = _warmRoot,
            ["Docker:WarmHelper"] = WarmTestContext.Helper,
            ["Worker:Scratch"] = _temp.Combine("scratch"),
            ["Functions:Output"] = _temp.Combine("functions"),
        }).Build();

        // Debug: a synchronous invocation's end is logged at Debug (an async one's at Information).
        _server = PipelinesServer.Build(config, _url, LogLevel.Debug);
        _server.Services.GetRequiredService<ILoggerFactory>().AddProvider(_logs);
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.StopAsync();
        await _server.DisposeAsync();
        _tracing.Dispose();
        await using (var db = NpgsqlDataSource.Create(TestEnvironment.Postgres))
        await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        _temp.Dispose();
        if (Directory.Exists(_warmRoot))
        {
            Directory.Delete(_warmRoot, recursive: true);
        }
    }

    [Fact]
    public async Task A_sync_and_an_async_invocation_each_make_their_span_and_log_their_end_inside_it()
    {
        using var http = new HttpClient { BaseAddress = new Uri(_url), Timeout = TimeSpan.FromSeconds(90) };
        using (var deployed = await http.PostAsync("/api/functions", new StringContent($"name: traced\nimage: {WarmTestContext.ForkImage}\ncommand: [\"wordcount\"]\noutput: counts.tsv\nmax: 1\n", Encoding.UTF8, "application/yaml")))
        {
            Assert.True(deployed.IsSuccessStatusCode, await deployed.Content.ReadAsStringAsync());
        }

        string syncId;
        using (var sync = await http.PostAsync("/api/functions/traced/invoke?filename=a.txt", new StringContent("one two")))
        {
            Assert.True(sync.StatusCode == HttpStatusCode.OK, await sync.Content.ReadAsStringAsync());
            syncId = sync.Headers.GetValues("Pipelines-Invocation").Single();
        }

        string asyncId;
        using (var queued = await http.PostAsync("/api/functions/traced/invoke?filename=b.txt&async=true", new StringContent("three")))
        {
            var body = await queued.Content.ReadAsStringAsync();
            Assert.True(queued.StatusCode == HttpStatusCode.Accepted, body);
            asyncId = JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
        }

        // The async invocation runs on the server's worker role: its span ends when its job does.
        foreach (var id in new[] { syncId, asyncId })
        {
            var span = await Eventually.WaitAsync(() => Task.FromResult(Invoke(id)), () => $"the span of invocation {id}; spans: {string.Join(", ", Spans().Select(s => s.OperationName))}");
            Assert.Equal(ActivityStatusCode.Unset, span.Status);
            Assert.Equal("succeeded", span.GetTagItem("pipelines.function.outcome"));
            Assert.Equal("traced", span.GetTagItem("pipelines.function"));
            Assert.Equal(id == syncId ? ActivityKind.Server : ActivityKind.Consumer, span.Kind);

            // The invocation's end is logged inside its span: the line names the trace and the span.
            var line = await Eventually.WaitAsync(() => Task.FromResult(_logs.Lines().FirstOrDefault(l => l.Message.Contains($"invocation {id}: succeeded", StringComparison.Ordinal))), () => $"the log line of invocation {id}");
            Assert.Equal(span.TraceId.ToHexString(), line.Scopes.GetValueOrDefault("TraceId"));
            Assert.Equal(span.SpanId.ToHexString(), line.Scopes.GetValueOrDefault("SpanId"));
        }

        Assert.NotEqual(Invoke(syncId)!.TraceId, Invoke(asyncId)!.TraceId);
    }

    private List<Activity> Spans()
    {
        _tracing.ForceFlush();
        lock (_spans)
        {
            return [.. _spans];
        }
    }

    private Activity? Invoke(string id) =>
        Spans().SingleOrDefault(s => s.OperationName == EngineTracing.Invoke && Equals(s.GetTagItem("pipelines.invocation.id"), id));

    private sealed record LogLine(string Message, Dictionary<string, string> Scopes);

    /// <summary>Every log line written, with its scopes flattened (the trace and span ids among them), as a collector reads them.</summary>
    private sealed class CapturedLogs : ILoggerProvider, ISupportExternalScope
    {
        private readonly List<LogLine> _lines = [];
        private IExternalScopeProvider? _scopes;

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public List<LogLine> Lines()
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }

        public void Dispose()
        {
        }

        private void Add(string message)
        {
            var scopes = new Dictionary<string, string>(StringComparer.Ordinal);
            _scopes?.ForEachScope(
                (scope, into) =>
                {
                    if (scope is IEnumerable<KeyValuePair<string, object?>> pairs)
                    {
                        foreach (var (key, value) in pairs)
                        {
                            into[key] = value?.ToString() ?? "";
                        }
                    }
                },
                scopes);
            lock (_lines)
            {
                _lines.Add(new LogLine(message, scopes));
            }
        }

        private sealed class Logger(CapturedLogs logs) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => logs._scopes?.Push(state);

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                logs.Add(formatter(state, exception));
        }
    }
}
