using Hangfire;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipelines.Hosting;

namespace Pipelines.Tests.Hosting;

/// <summary>
/// Hangfire's log provider is one static field of the process: a host that wired Hangfire and is
/// then disposed, started or not, must leave no provider behind that fails the next Hangfire type
/// asking for a logger (CI met a storage installer whose type initializer failed that way, and with
/// it every later test of the process that made a PostgreSQL storage).
/// </summary>
[Unit]
public sealed class HangfireLogsTests
{
    private static IConfiguration Empty() => new ConfigurationBuilder().Build();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task After_a_host_that_wired_Hangfire_is_disposed_a_Hangfire_logger_can_still_be_made_and_used(bool started)
    {
        var host = EngineHost.Build(Empty(), worker: false);
        _ = host.Services.GetRequiredService<IGlobalConfiguration>();
        if (started)
        {
            await host.StartAsync();
            await host.StopAsync();
        }

        host.Dispose();

        var log = Hangfire.Logging.LogProvider.GetLogger("made after the host");
        log.Log(Hangfire.Logging.LogLevel.Warn, () => "a line with nowhere to go");

        // A host built after it wires its own, which logs.
        using var next = EngineHost.Build(Empty(), worker: false);
        _ = next.Services.GetRequiredService<IGlobalConfiguration>();
        Assert.True(Hangfire.Logging.LogProvider.GetLogger("made for the next host").Log(Hangfire.Logging.LogLevel.Error, null));
    }
}
