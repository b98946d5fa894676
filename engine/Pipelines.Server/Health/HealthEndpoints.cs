using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Pipelines.Server.Access;

namespace Pipelines.Server.Health;

/// <summary>
/// /healthz: the process is up. /readyz: PostgreSQL (when configured), the bucket and Docker
/// answer, and no outage is being waited out. Both open to all; served by `pipelines server` and
/// by every worker's listener (WorkerHost), the same checks for both.
/// </summary>
internal static class HealthEndpoints
{
    private const string Ready = "ready";

    /// <summary>
    /// The checks; <paramref name="bucket"/> is the bucket /readyz lists (Server:Bucket), or null
    /// for the S3 endpoint alone; <paramref name="postgres"/> adds PostgreSQL's (an embedded server has none to check).
    /// </summary>
    public static IServiceCollection AddPipelinesHealth(this IServiceCollection services, string? bucket, bool postgres)
    {
        services.AddSingleton(new HealthOptions(bucket));
        var checks = services.AddHealthChecks();
        if (postgres)
        {
            checks.AddCheck<PostgresCheck>("postgres", tags: [Ready], timeout: TimeSpan.FromSeconds(5));
        }

        checks
            .AddCheck<BucketCheck>("bucket", tags: [Ready], timeout: TimeSpan.FromSeconds(5))
            .AddCheck<DockerCheck>("docker", tags: [Ready], timeout: TimeSpan.FromSeconds(5))
            .AddCheck<HarvestCheck>("harvest", tags: [Ready])
            .AddCheck<OutageCheck>("outage", tags: [Ready]);
        return services;
    }

    public static IEndpointRouteBuilder MapPipelinesHealth(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync }).AllowAnonymous().WithMetadata(TenantAccess.Open);
        app.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = c => c.Tags.Contains(Ready), ResponseWriter = WriteAsync }).AllowAnonymous().WithMetadata(TenantAccess.Open);
        return app;
    }

    private static Task WriteAsync(HttpContext http, HealthReport report)
    {
        http.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(http.Response.Body, new
        {
            status = report.Status.ToString().ToLowerInvariant(),
            checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString().ToLowerInvariant(), detail = e.Value.Description }),
        }, cancellationToken: http.RequestAborted);
    }
}
