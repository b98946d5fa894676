using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Pipelines.Model;
using Pipelines.Server.Access;
using Pipelines.Triggers;

namespace Pipelines.Server.Api;

/// <summary>
/// Registered workflows with triggers under /api/workflows (register, list, delete), and the
/// S3 event notification endpoint /api/triggers/events that AWS (through SNS/EventBridge
/// forwarding), MinIO or Ceph post to. Both feed the same ledger as the watcher.
/// </summary>
internal static partial class TriggersApi
{
    public static void MapTriggersApi(this IEndpointRouteBuilder app)
    {
        var workflows = app.MapGroup("/api/workflows").WithTags("workflows").RequireAuthorization(Access.Access.ReadPolicy);
        workflows.MapPost("/", RegisterAsync).WithMetadata(TenantAccess.Creating).RequireAuthorization(Access.Access.FullPolicy)
            .Accepts<SubmitRunRequest>("application/json", "application/yaml")
            .ProducesProblem(400).ProducesProblem(422).ProducesProblem(503)
            .WithSummary("Register a workflow with a trigger block: a JSON {workflow, set, process_existing} body, or the YAML itself.");
        workflows.MapGet("/", ListAsync).WithMetadata(TenantAccess.Listing).WithSummary("Registered workflows with their triggers: last poll, objects seen, runs started.");
        workflows.MapDelete("/{name}", DeleteAsync).WithMetadata(TenantAccess.Owned).RequireAuthorization(Access.Access.FullPolicy).ProducesProblem(404)
            .WithSummary("Stop triggering a registered workflow (its runs and ledger stay).");

        app.MapPost("/api/triggers/events", IngestAsync).WithMetadata(TenantAccess.Listing).WithTags("triggers").RequireAuthorization(Access.Access.FullPolicy)
            .Accepts<JsonElement>("application/json").ProducesProblem(400)
            .WithSummary("An S3 event notification body (Records[].s3.bucket.name, s3.object.key, eTag, size, eventName); each record is answered.");
    }

    private static async Task<Results<Created<Registration>, ProblemHttpResult>> RegisterAsync(
        HttpRequest request, TenantContext tenant, ClaimsPrincipal user, ILoggerFactory logs, CancellationToken ct)
    {
        var (body, problem) = await WorkflowBody.ReadAsync(request, "registration", ct);
        if (body is null)
        {
            return problem!;
        }

        try
        {
            var registration = await tenant.Registrar.RegisterAsync(body.Yaml, "the submitted workflow", baseDirectory: null, body.Set, body.ProcessExisting, ct);
            LogRegistered(logs.CreateLogger("Pipelines.Server.Api"), registration.Trigger.Name, Access.Access.Who(user));
            return TypedResults.Created($"/api/workflows/{Uri.EscapeDataString(registration.Trigger.Name)}", registration);
        }
        catch (PipelinesException e)
        {
            return WorkflowBody.Refusal(e, "The workflow was not registered");
        }
    }

    private static async Task<Ok<IReadOnlyList<TriggerSummary>>> ListAsync(TenantContext tenant, CancellationToken ct) =>
        TypedResults.Ok(await tenant.Triggers.SummariesAsync(ct));

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(string name, TenantContext tenant, ClaimsPrincipal user, ILoggerFactory logs, CancellationToken ct)
    {
        if (!await tenant.Registrar.UnregisterAsync(name, ct))
        {
            return TypedResults.Problem(statusCode: 404, title: "No such workflow", detail: $"no registered workflow is named '{name}'");
        }

        LogUnregistered(logs.CreateLogger("Pipelines.Server.Api"), name, Access.Access.Who(user));
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<IngestResult>, ProblemHttpResult>> IngestAsync(HttpRequest request, TenantContext tenant, CancellationToken ct)
    {
        using var reader = new StreamReader(request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync(ct);
        var result = await tenant.Ingest.HandleAsync(body, ct);
        if (result.Malformed)
        {
            return TypedResults.Problem(statusCode: 400, title: "Not an S3 event notification", detail: result.Note ?? result.Summary);
        }

        return TypedResults.Ok(result);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "workflow {Name} registered by {Who}")]
    private static partial void LogRegistered(ILogger logger, string name, string who);

    [LoggerMessage(Level = LogLevel.Information, Message = "workflow {Name} unregistered by {Who}")]
    private static partial void LogUnregistered(ILogger logger, string name, string who);
}
