using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Pipelines.Lineage;
using Pipelines.RunStore;
using Pipelines.Server.Access;
using Pipelines.Storage;

namespace Pipelines.Server.Api;

/// <summary>GET /api/lineage: what produced a task output, a results file or one of its rows (the CLI's `lineage`), read policy.</summary>
internal static class LineageApi
{
    public static RouteHandlerBuilder MapLineageApi(this IEndpointRouteBuilder app) =>
        app.MapGet("/api/lineage", ExplainAsync).WithMetadata(TenantAccess.Owned).WithTags("lineage").RequireAuthorization(Access.Access.ReadPolicy)
            .ProducesProblem(400).ProducesProblem(404)
            .WithSummary("What produced a file of a run (uri: s3:// or, for runs of this server, a local path), or one row of a results file (row=N, or key=VALUE with an optional column).");

    private static async Task<Results<Ok<LineageAnswer>, ProblemHttpResult>> ExplainAsync(
        string? uri, long? row, string? key, string? column, TenantContext tenant, ObjectStoreFactory stores, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(uri))
        {
            return TypedResults.Problem(statusCode: 400, title: "No uri", detail: "name the file with ?uri=: a task output or a results file of a run, s3://bucket/... or a local path");
        }

        // The server runs as root: a local path answers only inside the output folder of a run it knows,
        // so that a key holder cannot probe the host's folders through lineage. On a server with
        // tenants an s3 URI does too (of a run of the caller's tenant): the server's credentials read
        // every tenant's bucket, and a run folder of another tenant must answer as no run at all.
        var s3 = uri.StartsWith("s3://", StringComparison.Ordinal);
        if ((!s3 || tenant.Confined) && !await InKnownRunAsync(uri, tenant.Runs, stores, ct))
        {
            return TypedResults.Problem(statusCode: 404, title: "Not a run of this server", detail: tenant.Confined
                ? $"{uri} is not inside the output folder of a run this server knows"
                : $"{uri} is not inside the output folder of a run this server knows; local paths answer only for those (s3:// URIs for any run)");
        }

        try
        {
            return TypedResults.Ok(await new LineageService(stores, tenant.Runs).ExplainAsync(new LineageRequest(uri, row, key, column), ct));
        }
        catch (PipelinesException e) when (!e.RetryHelps)
        {
            return TypedResults.Problem(statusCode: 400, title: "No lineage", detail: e.Message);
        }
    }

    private static async Task<bool> InKnownRunAsync(string uri, IRunStore store, ObjectStoreFactory stores, CancellationToken ct)
    {
        var s3 = uri.StartsWith("s3://", StringComparison.Ordinal);
        var full = s3 ? uri : Path.GetFullPath(uri.StartsWith("file://", StringComparison.Ordinal) ? uri["file://".Length..] : uri);

        // S3 keeps . and .. in a key literally (a local path has them resolved above): no run folder names them.
        if (full.Split('/').Any(s => s is "." or ".."))
        {
            return false;
        }

        var segments = full.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var i = segments.Length - 1; i >= 0; i--)
        {
            var run = await store.GetRunAsync(segments[i], ct);
            if (run is not null && run.OutputUri.StartsWith("s3://", StringComparison.Ordinal) == s3)
            {
                var folder = stores.Open(run.OutputUri).Uri;
                if (full.StartsWith(folder, StringComparison.Ordinal))
                {
                    return true;
                }
            }
        }

        return false;
    }
}
