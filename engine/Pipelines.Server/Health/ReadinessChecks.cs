using Amazon.S3.Model;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Pipelines.Containers;
using Pipelines.Storage;

namespace Pipelines.Server.Health;

/// <summary>PostgreSQL answers a query.</summary>
internal sealed class PostgresCheck(NpgsqlDataSource db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await using var cmd = db.CreateCommand("SELECT 1");
            await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy("PostgreSQL answers");
        }
        catch (NpgsqlException e)
        {
            return HealthCheckResult.Unhealthy("PostgreSQL: " + e.GetBaseException().Message);
        }
    }
}

/// <summary>The bucket (Server:Bucket) can be listed, or, without one, the S3 endpoint answers with these credentials.</summary>
internal sealed class BucketCheck(ObjectStoreFactory stores, HealthOptions options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            if (options.Bucket is { Length: > 0 } bucket)
            {
                await stores.Open($"s3://{bucket}/").Store.PingAsync(cancellationToken).ConfigureAwait(false);
                return HealthCheckResult.Healthy($"bucket {bucket} answers");
            }

            await stores.PingEndpointAsync(cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy("the S3 endpoint answers");
        }
        catch (PipelinesException e)
        {
            // The message names the service's answer, never the credentials.
            return HealthCheckResult.Unhealthy(e.Message.StartsWith("S3: ", StringComparison.Ordinal) ? e.Message : "S3: " + e.Message);
        }
    }
}

/// <summary>The container engine of this process (the Docker engine) answers.</summary>
internal sealed class DockerCheck(IEngineLiveness engine) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await engine.PingAsync(cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy("Docker answers");
        }
        catch (PipelinesException e)
        {
            return HealthCheckResult.Unhealthy(e.Message);
        }
    }
}

/// <summary>How this process harvests: its policy and our containers' CPU class (docs/harvesting.md); healthy whatever the mode.</summary>
internal sealed class HarvestCheck(Pipelines.Harvest.Harvester? harvester = null) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(HealthCheckResult.Healthy(harvester is null
            ? "no worker role here: nothing harvested"
            : $"policy {Pipelines.Harvest.Harvester.Name(harvester.Policy)}{(harvester.Draining ? " (draining)" : "")}, containers {harvester.IdleMode}"));
}

/// <summary>No job of this process is waiting an outage out (Worker/OutageGate): while one is, the worker takes no new work.</summary>
internal sealed class OutageCheck(Pipelines.Worker.OutageGate gate) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(gate.Reason is { } reason
            ? HealthCheckResult.Unhealthy("waiting an outage out, taking no new work: " + reason)
            : HealthCheckResult.Healthy("no outage"));
}

/// <summary>What the readiness checks look at: the bucket (Server:Bucket), or null for the S3 endpoint alone.</summary>
internal sealed record HealthOptions(string? Bucket);
