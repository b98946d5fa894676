using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Pipelines.Model;
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
        workflows.MapPost("/", RegisterAsync).RequireAuthorization(Access.Access.FullPolicy)
            .Accepts<RegisterWorkflowRequest>("application/json", "application/yaml")
            .ProducesProblem(400).ProducesProblem(422).ProducesProblem(503)
            .WithSummary("Register a workflow with a trigger block: a JSON {workflow, set, process_existing} body, or the YAML itself.");
        workflows.MapGet("/", ListAsync).WithSummary("Registered workflows with their triggers: last poll, objects seen, runs started.");
        workflows.MapDelete("/{name}", DeleteAsync).RequireAuthorization(Access.Access.FullPolicy).ProducesProblem(404)
            .WithSummary("Stop triggering a registered workflow (its runs and ledger stay).");

        app.MapPost("/api/triggers/events", IngestAsync).WithTags("triggers").RequireAuthorization(Access.Access.FullPolicy)
            .Accepts<JsonElement>("application/json").ProducesProblem(400)
            .WithSummary("An S3 event notification body (Records[].s3.bucket.name, s3.object.key, eTag, size, eventName); each record is answered.");
    }

    private static async Task<Results<Created<Registration>, ProblemHttpResult>> RegisterAsync(
        HttpRequest request, TriggerRegistrar registrar, ClaimsPrincipal user, ILoggerFactory logs, CancellationToken ct)
    {
        string yaml;
        var set = request.Query["set"].Where(s => s is not null).Select(s => s!).ToList();
        var processExisting = string.Equals(request.Query["process_existing"], "true", StringComparison.OrdinalIgnoreCase);
        if (request.HasJsonContentType())
        {
            RegisterWorkflowRequest? body;
            try
            {
                body = await request.ReadFromJsonAsync<RegisterWorkflowRequest>(ct);
            }
            catch (JsonException e)
            {
                return TypedResults.Problem(statusCode: 400, title: "The body is not a registration", detail: "expected JSON {\"workflow\": \"<yaml>\", \"set\": [\"key=value\"], \"process_existing\": false}: " + e.Message);
            }

            if (body is null || string.IsNullOrWhiteSpace(body.Workflow))
            {
                return TypedResults.Problem(statusCode: 400, title: "The body is not a registration", detail: "the field workflow (the workflow YAML) is missing");
            }

            yaml = body.Workflow;
            set.AddRange(body.Set ?? []);
            processExisting |= body.ProcessExisting;
        }
        else
        {
            using var reader = new StreamReader(request.Body, Encoding.UTF8);
            yaml = await reader.ReadToEndAsync(ct);
        }

        try
        {
            var registration = await registrar.RegisterAsync(yaml, "the submitted workflow", baseDirectory: null, set, processExisting, ct);
            LogRegistered(logs.CreateLogger("Pipelines.Server.Api"), registration.Trigger.Name, Access.Access.Who(user));
            return TypedResults.Created($"/api/workflows/{Uri.EscapeDataString(registration.Trigger.Name)}", registration);
        }
        catch (WorkflowInvalidException e)
        {
            return TypedResults.Problem(
                statusCode: 400,
                title: "The workflow is not valid",
                detail: $"{e.Problems.Count} problem{(e.Problems.Count == 1 ? "" : "s")}: " + string.Join("; ", e.Problems),
                extensions: new Dictionary<string, object?> { ["problems"] = e.Problems.Select(ProblemView.From).ToList() });
        }
        catch (PipelinesException e)
        {
            return TypedResults.Problem(statusCode: e.RetryHelps ? 503 : 422, title: "The workflow was not registered", detail: e.Message);
        }
    }

    private static async Task<Ok<IReadOnlyList<TriggerSummary>>> ListAsync(PostgresTriggerStore ledger, CancellationToken ct)
    {
        await ledger.InitializeAsync(ct);
        return TypedResults.Ok(await ledger.SummariesAsync(ct));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(string name, TriggerRegistrar registrar, ClaimsPrincipal user, ILoggerFactory logs, CancellationToken ct)
    {
        if (!await registrar.UnregisterAsync(name, ct))
        {
            return TypedResults.Problem(statusCode: 404, title: "No such workflow", detail: $"no registered workflow is named '{name}'");
        }

        LogUnregistered(logs.CreateLogger("Pipelines.Server.Api"), name, Access.Access.Who(user));
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<IngestResult>, ProblemHttpResult>> IngestAsync(HttpRequest request, S3EventIngest ingest, CancellationToken ct)
    {
        using var reader = new StreamReader(request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync(ct);
        var result = await ingest.HandleAsync(body, ct);
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

/// <summary>The JSON form of a registration.</summary>
internal sealed record RegisterWorkflowRequest(string? Workflow, IReadOnlyList<string>? Set, [property: System.Text.Json.Serialization.JsonPropertyName("process_existing")] bool ProcessExisting);
