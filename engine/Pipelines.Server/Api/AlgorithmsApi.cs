using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Pipelines.Algorithms;
using Pipelines.Server.Access;

namespace Pipelines.Server.Api;

/// <summary>
/// Algorithms under /api/algorithms: push a version with the `docker save` tarball as the body
/// (streamed to a scratch file, at most Algorithms:MaxImageBytes), list, show, delete, and the
/// loads workers did (docs/algorithms.md).
/// </summary>
internal static class AlgorithmsApi
{
    public static void MapAlgorithmsApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/algorithms").WithTags("algorithms").RequireAuthorization(Access.Access.ReadPolicy);
        g.MapGet("/", ListAsync).WithSummary("Every algorithm with its versions and channels.");
        g.MapGet("/loads", LoadsAsync).WithSummary("The latest loads of images onto workers' engines: digest, worker, seconds.");
        g.MapGet("/{name}", ShowAsync).ProducesProblem(404).WithSummary("One algorithm's versions and channels.");
        g.MapPost("/{name}/versions/{version}", PushAsync).RequireAuthorization(Access.Access.FullPolicy)
            .Accepts<Stream>("application/x-tar").ProducesProblem(413).ProducesProblem(422).ProducesProblem(503)
            .WithSummary("Push a version: the body is a `docker save` tarball of one image; ?digest= refuses another image id, ?notes= is kept.");
        g.MapPost("/{name}/canary/{version}", CanaryAsync).RequireAuthorization(Access.Access.FullPolicy).ProducesProblem(422)
            .WithSummary("Make a version the canary: ?percent= (default 10) of the invocations of functions following @stable go to it; with ?shadow=true that share is copied to it while stable answers.");
        g.MapPost("/{name}/promote/{version}", PromoteAsync).RequireAuthorization(Access.Access.FullPolicy).ProducesProblem(422)
            .WithSummary("Make a version stable (a canary of that version ends).");
        g.MapPost("/{name}/abort", AbortAsync).RequireAuthorization(Access.Access.FullPolicy).ProducesProblem(404)
            .WithSummary("End the canary: every invocation goes to stable.");
        g.MapDelete("/{name}/versions/{version}", DeleteAsync).RequireAuthorization(Access.Access.FullPolicy).ProducesProblem(404).ProducesProblem(422)
            .WithSummary("Delete a version (its image goes from the store when no other version has it).");
    }

    private static async Task<Ok<IReadOnlyList<AlgorithmSummary>>> ListAsync(TenantContext tenant, CancellationToken ct) =>
        TypedResults.Ok(await tenant.Algorithms.ListAsync(null, ct));

    private static async Task<Results<Ok<AlgorithmSummary>, ProblemHttpResult>> ShowAsync(string name, TenantContext tenant, CancellationToken ct) =>
        (await tenant.Algorithms.ListAsync(name, ct)).SingleOrDefault() is { } a
            ? TypedResults.Ok(a)
            : TypedResults.Problem(statusCode: 404, title: "No such algorithm", detail: $"no algorithm is named '{name}'");

    private static async Task<Ok<IReadOnlyList<ImageLoad>>> LoadsAsync(TenantContext tenant, CancellationToken ct) =>
        TypedResults.Ok(await tenant.Catalog.LoadsAsync(null, 100, ct));

    private static async Task<Results<Created<PushResult>, ProblemHttpResult>> PushAsync(
        string name, string version, string? digest, string? notes, HttpRequest request, TenantContext tenant, AlgorithmOptions options, CancellationToken ct)
    {
        if (request.ContentLength > options.MaxImageBytes)
        {
            return TypedResults.Problem(statusCode: 413, title: "The image is too big", detail: $"the body is {request.ContentLength} bytes, over the limit of {options.MaxImageBytes} (Algorithms:MaxImageBytes); nothing was stored");
        }

        // Kestrel's own cap (30 MB) would cut an image short: the push counts against its own limit instead.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = options.MaxImageBytes + 1;
        }

        try
        {
            var r = await tenant.OwnAlgorithms.PushAsync(name, version, request.Body, digest, notes, tenant.Owner.SubmittedBy!, ct);
            return TypedResults.Created($"/api/algorithms/{Uri.EscapeDataString(name)}", r);
        }
        catch (Tenancy.QuotaExceededException e)
        {
            return TypedResults.Problem(statusCode: 413, title: "The tenant's quota is reached", detail: e.Message, extensions: new Dictionary<string, object?> { ["quota"] = e.Quota });
        }
        catch (PipelinesException e)
        {
            return TypedResults.Problem(statusCode: e.RetryHelps ? 503 : e.Message.Contains("over the limit", StringComparison.Ordinal) ? 413 : 422, title: "The version was not pushed", detail: e.Message);
        }
    }

    private static Task<Results<Ok<AlgorithmSummary>, ProblemHttpResult>> CanaryAsync(
        string name, string version, int? percent, bool? shadow, TenantContext tenant, CancellationToken ct) =>
        ChannelAsync(name, tenant.Algorithms, a => a.CanaryAsync(name, version, percent ?? (shadow == true ? 100 : 10), tenant.Owner.SubmittedBy!, ct, shadow == true), ct);

    private static Task<Results<Ok<AlgorithmSummary>, ProblemHttpResult>> PromoteAsync(string name, string version, TenantContext tenant, CancellationToken ct) =>
        ChannelAsync(name, tenant.Algorithms, a => a.PromoteAsync(name, version, tenant.Owner.SubmittedBy!, ct), ct);

    private static async Task<Results<Ok<AlgorithmSummary>, ProblemHttpResult>> AbortAsync(string name, TenantContext tenant, CancellationToken ct) =>
        await tenant.Algorithms.AbortCanaryAsync(name, tenant.Owner.SubmittedBy!, ct)
            ? await ChannelAsync(name, tenant.Algorithms, _ => Task.CompletedTask, ct)
            : TypedResults.Problem(statusCode: 404, title: "No canary", detail: $"algorithm '{name}' has no canary");

    /// <summary>A channel change, answered with the algorithm as it is after it (its events say who and why).</summary>
    private static async Task<Results<Ok<AlgorithmSummary>, ProblemHttpResult>> ChannelAsync(string name, AlgorithmService algorithms, Func<AlgorithmService, Task> change, CancellationToken ct)
    {
        try
        {
            await change(algorithms);
        }
        catch (PipelinesException e)
        {
            return TypedResults.Problem(statusCode: e.RetryHelps ? 503 : 422, title: "The channel was not changed", detail: e.Message);
        }

        return TypedResults.Ok((await algorithms.ListAsync(name, ct)).Single());
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(string name, string version, TenantContext tenant, CancellationToken ct)
    {
        try
        {
            return await tenant.Algorithms.DeleteAsync(name, version, ct) is null
                ? TypedResults.Problem(statusCode: 404, title: "No such version", detail: $"there is no {name}@{version}")
                : TypedResults.NoContent();
        }
        catch (PipelinesException e)
        {
            return TypedResults.Problem(statusCode: e.RetryHelps ? 503 : 422, title: "The version was not deleted", detail: e.Message);
        }
    }
}
