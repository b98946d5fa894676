using Microsoft.Extensions.Hosting;
using Pipelines.RunStore;

namespace Pipelines.Hosting;

/// <summary>
/// Creates or upgrades the project's tables (<see cref="PostgresSchema"/>) once, when the host
/// starts: registered before every other hosted service, so before the Hangfire servers, the
/// trigger loop and (in `pipelines server`) the web server. Requests never run DDL.
/// </summary>
internal sealed class SchemaSetup(PostgresSchema schema) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => schema.CreateAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
