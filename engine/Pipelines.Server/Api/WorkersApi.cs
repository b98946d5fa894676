using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Pipelines.Harvest;
using Pipelines.Queue;
using Pipelines.Server.Access;

namespace Pipelines.Server.Api;

/// <summary>The workers' harvesting figures under /api/workers, and a drain (docs/harvesting.md).</summary>
internal static class WorkersApi
{
    /// <summary>One worker as the API shows it.</summary>
    public sealed record WorkerFigures(string Worker, HarvestStatus Status);

    public static void MapWorkersApi(this IEndpointRouteBuilder app)
    {
        var workers = app.MapGroup("/api/workers").WithTags("workers").RequireAuthorization(Access.Access.ReadPolicy);
        workers.MapGet("/", List).WithMetadata(TenantAccess.Open).WithSummary("Every live worker: policy, owner load, harvested CPU, tasks running, suspended and vacated, and its last hour.");
        workers.MapPost("/{name}/drain", Drain).RequireAuthorization(Access.Access.AdminPolicy).WithMetadata(TenantAccess.Admin).ProducesProblem(404)
            .WithSummary("Ask a worker to finish its running tasks and take no more (seen within 10 s).");
    }

    private static Ok<IReadOnlyList<WorkerFigures>> List(IWorkerBoard board) =>
        TypedResults.Ok<IReadOnlyList<WorkerFigures>>(HarvestBoard.Read(board).Select(w => new WorkerFigures(w.Worker, w.Status)).ToList());

    private static Results<Accepted, ProblemHttpResult> Drain(string name, IWorkerBoard board) =>
        HarvestBoard.RequestDrain(board, n => n == name).Count > 0
            ? TypedResults.Accepted($"/api/workers")
            : TypedResults.Problem($"no live worker is named {name} (GET /api/workers lists them)", statusCode: StatusCodes.Status404NotFound);
}
