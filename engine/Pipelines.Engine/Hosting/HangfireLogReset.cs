using Microsoft.Extensions.Hosting;

namespace Pipelines.Hosting;

/// <summary>
/// Hangfire keeps its log provider in a static field, set to a host's logger factory when that
/// host wires Hangfire; once the host is disposed the factory is too, and any later Hangfire
/// object of the process (a second host, a retry policy) would fail asking it for a logger
/// (ObjectDisposedException). Disposed with the host, this hands Hangfire back its default (no
/// provider) so the next host sets its own.
/// </summary>
internal sealed class HangfireLogReset : IHostedService, IDisposable
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => Hangfire.Logging.LogProvider.SetCurrentLogProvider(null);
}
