using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pipelines.Algorithms;
using Pipelines.Containers.Warm;
using Pipelines.Functions;
using Pipelines.Model;
using Pipelines.Quotas;
using Pipelines.Server.Access;
using Pipelines.Tenancy;
using Pipelines.Worker;

namespace Pipelines.Server.Api;

/// <summary>
/// Functions under /api/functions: deploy (the function file as the body), list, show, delete,
/// invoke (the body is the input, the response the output), and async invocations. Reading
/// needs a read key; deploying, deleting and invoking need a full key, as submitting a run does
/// (an invocation runs the function's code on this cluster's machines).
/// </summary>
internal static partial class FunctionsApi
{
    public static void MapFunctionsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/functions").WithTags("functions").RequireAuthorization(Access.Access.ReadPolicy);
        api.MapPost("/", DeployAsync).WithMetadata(TenantAccess.Creating).RequireAuthorization(Access.Access.FullPolicy)
            .Accepts<string>("application/yaml", "text/plain")
            .ProducesProblem(400).ProducesProblem(422).ProducesProblem(503)
            .WithSummary("Deploy a function: the function file (YAML) is the body. A changed file makes a new version (201); the same content again changes nothing (200).");
        api.MapGet("/", ListAsync).WithMetadata(TenantAccess.Listing).WithSummary("Every function's current version.");
        api.MapGet("/{name}", GetAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(400).ProducesProblem(404)
            .WithSummary("A function: its current version, every version, requests, errors, error rate and p50/p95 latency per version and algorithm version (shadow copies with equal/different), over ?window= (e.g. 5m) or every kept invocation; warm containers; its gray release.");
        api.MapDelete("/{name}", DeleteAsync).WithMetadata(TenantAccess.Owned).RequireAuthorization(Access.Access.FullPolicy).ProducesProblem(404)
            .WithSummary("Delete a function with its versions and recorded invocations; its warm containers are stopped.");
        api.MapPost("/{name}/invoke", InvokeAsync).WithMetadata(TenantAccess.Owned).RequireAuthorization(Access.Access.FullPolicy)
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(413).ProducesProblem(429).ProducesProblem(502).ProducesProblem(503).ProducesProblem(504)
            .WithSummary("Invoke: the body is the input (any bytes, or multipart/form-data for several files); the response is the output. ?async=true answers 202 with the invocation's location.");
        api.MapGet("/{name}/invocations", InvocationsAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(404).WithSummary("A function's latest invocations, newest first (limit, default 50).");
        api.MapGet("/{name}/invocations/{id}", InvocationAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(404).WithSummary("One invocation: status, latency, hashes, error.");
        api.MapGet("/{name}/invocations/{id}/output", OutputAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(404).ProducesProblem(409)
            .WithSummary("An async invocation's output, once it has succeeded.");
    }

    internal static string FunctionUrl(string name) => "/api/functions/" + Uri.EscapeDataString(name);

    private static async Task<Results<Created<DeployedView>, Ok<DeployedView>, ProblemHttpResult>> DeployAsync(
        HttpRequest request, TenantContext tenant, ILoggerFactory logs, CancellationToken ct)
    {
        string yaml;
        using (var reader = new StreamReader(request.Body, Encoding.UTF8))
        {
            yaml = await reader.ReadToEndAsync(ct);
        }

        try
        {
            var who = tenant.Owner.SubmittedBy!;
            var result = await tenant.OwnFunctions.DeployAsync(yaml, "the function file", who, ct);
            var view = new DeployedView(FunctionView.From(result.Function), result.Created, result.Replaced);
            LogDeployed(logs.CreateLogger("Pipelines.Server.Api"), result.Function.Name, result.Function.Version, result.Created ? "new version" : "unchanged", who);
            return result.Created ? TypedResults.Created(FunctionUrl(result.Function.Name), view) : TypedResults.Ok(view);
        }
        catch (FunctionInvalidException e)
        {
            return TypedResults.Problem(
                statusCode: 400,
                title: "The function file is not valid",
                detail: $"{e.Problems.Count} problem{(e.Problems.Count == 1 ? "" : "s")}: " + string.Join("; ", e.Problems),
                extensions: new Dictionary<string, object?> { ["problems"] = e.Problems.Select(ProblemView.From).ToList() });
        }
        catch (PipelinesException e)
        {
            return TypedResults.Problem(statusCode: e.RetryHelps ? 503 : 422, title: "The function was not deployed", detail: e.Message);
        }
    }

    private static async Task<Ok<List<FunctionView>>> ListAsync(TenantContext tenant, CancellationToken ct)
    {
        return TypedResults.Ok((await tenant.Functions.Store.ListAsync(ct)).Select(FunctionView.From).ToList());
    }

    private static async Task<Results<Ok<FunctionDetailView>, ProblemHttpResult>> GetAsync(
        string name, string? window, TenantContext tenant, TimeProvider time, CancellationToken ct)
    {
        var functions = tenant.Functions;
        TimeSpan span = default;
        if (window is not null && (!Quantities.TryParseDuration(window, out span) || span <= TimeSpan.Zero))
        {
            return TypedResults.Problem(statusCode: 400, title: "Bad window", detail: $"window '{window}' is not a duration (e.g. 5m, 1h)");
        }

        var current = await functions.Store.GetAsync(name, null, ct);
        if (current is null)
        {
            return NoSuchFunction(name);
        }

        var versions = await functions.Store.VersionsAsync(name, ct);
        var stats = await functions.Store.StatsAsync(name, window is null ? null : time.GetUtcNow() - span, ct);
        return TypedResults.Ok(new FunctionDetailView(
            FunctionView.From(current),
            versions.Select(v => new VersionView(v.Version, v.ImageDigest, v.DeployedAt, v.DeployedBy)).ToList(),
            stats.Select(StatsView.From).ToList(),
            WarmOf(functions, versions))
        {
            Window = window is null ? null : Quantities.FormatDuration(span),
            Release = await ReleaseOfAsync(functions, current, ct),
        });
    }

    /// <summary>The gray release of a function that follows an algorithm's stable channel, for the API and the dashboard; null for a pinned one.</summary>
    internal static async Task<ReleaseView?> ReleaseOfAsync(FunctionService functions, FunctionVersion function, CancellationToken ct) =>
        await functions.ReleaseAsync(function, ct) is { } release ? ReleaseView.From(release.Route, release.Events) : null;

    /// <summary>The pool's figures of the versions given, for the API and the dashboard.</summary>
    internal static List<WarmView> WarmOf(FunctionService functions, IReadOnlyList<FunctionVersion> versions) =>
        functions.WarmStats(versions).Select(w =>
            new WarmView(w.Version.Version, w.Stats.Warm, w.Stats.Busy, w.Stats.Starting, w.Stats.Waiting, w.Stats.Started, w.Stats.Replaced)
            {
                Held = w.Stats.Held,
                AlgorithmVersion = w.Stats.Owner.Length > w.Version.Owner.Length ? w.Stats.Owner[(w.Version.Owner.Length + 1)..] : null,
            }).ToList();

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(string name, TenantContext tenant, ILoggerFactory logs, CancellationToken ct)
    {
        if (!await tenant.Functions.DeleteAsync(name, ct))
        {
            return NoSuchFunction(name);
        }

        LogDeleted(logs.CreateLogger("Pipelines.Server.Api"), name, tenant.Owner.SubmittedBy!);
        return TypedResults.NoContent();
    }

    private static async Task<IResult> InvokeAsync(
        string name, HttpContext http, TenantContext tenant, RequestFolders folders, TenantQuotas quotas, CancellationToken ct)
    {
        var functions = tenant.Functions;
        var function = await functions.CurrentAsync(name, ct);
        if (function is null)
        {
            return NoSuchFunction(name);
        }

        var isAsync = string.Equals(http.Request.Query["async"], "true", StringComparison.OrdinalIgnoreCase);

        // A synchronous invoke meets its tenant's quotas before its body is read, so a refused one is not uploaded;
        // an async one is accepted now and meets them when it runs (it waits, never refused).
        string? slot = null;
        if (!isAsync)
        {
            slot = "sync-" + FunctionService.NewId();
            if (await AdmitAsync(http, quotas, functions, function, slot, tenant.Owner.SubmittedBy, ct) is { } refused)
            {
                return refused;
            }
        }

        var folder = folders.Take();
        var keep = false;

        // Whether the request wrote nothing in its folder: its body held in memory, its answer too.
        var untouched = false;
        try
        {
            FunctionInput input;
            try
            {
                input = await InvokeBody.ReadAsync(http.Request, function.Spec, RequestFolders.In(folder), inMemory: !isAsync, ct);
            }
            catch (InvokeBody.RefusedException e)
            {
                if (e.Status == 413)
                {
                    // The rest of an oversized body is not read: the connection is closed after this answer.
                    http.Response.Headers.Connection = "close";
                }

                return TypedResults.Problem(statusCode: e.Status, title: e.Status == 413 ? "The request is too large" : "Bad input", detail: e.Message);
            }

            var caller = tenant.Owner.SubmittedBy;
            if (isAsync)
            {
                var id = await functions.QueueAsync(function, input, caller, ct);
                var url = FunctionUrl(name) + "/invocations/" + id;
                var record = await functions.Store.GetInvocationAsync(id, ct);
                return TypedResults.Accepted(url, InvocationView.From(record!));
            }

            var outputFolder = RequestFolders.Out(folder);
            InvocationOutcome outcome;
            string invocation;
            FunctionVersion served;
            try
            {
                (invocation, outcome, served) = await functions.InvokeAsync(function, input, caller, outputFolder, ct);
            }
            catch (PipelinesException e) when (e.RetryHelps)
            {
                http.Response.Headers.RetryAfter = "5";
                return TypedResults.Problem(statusCode: 503, title: "A service is out of reach", detail: e.Message);
            }

            http.Response.Headers["Pipelines-Invocation"] = invocation;
            http.Response.Headers["Pipelines-Function-Version"] = function.Version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (served.AlgorithmVersion is { } algorithmVersion)
            {
                http.Response.Headers["Pipelines-Algorithm-Version"] = algorithmVersion;
            }

            if (outcome.Content is { } content)
            {
                untouched = input.Files.All(f => f.Content is not null);
                http.Response.StatusCode = outcome.HttpStatus;
                return TypedResults.Bytes(content, outcome.ContentType);
            }

            if (outcome.OutputPath is not null)
            {
                http.Response.StatusCode = outcome.HttpStatus;
                var output = new FileStream(outcome.OutputPath, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true);
                if (output.Length <= FunctionInvoker.SmallFile)
                {
                    // A small output is read whole and the folder removed now: no hop to the thread pool per read.
                    using (output)
                    {
                        return TypedResults.Bytes(FunctionInvoker.ReadSmall(output, output.Length), outcome.ContentType);
                    }
                }

                // The file is removed once the answer has been sent.
                keep = true;
                http.Response.OnCompleted(() =>
                {
                    folders.Return(folder);
                    return Task.CompletedTask;
                });
                return TypedResults.Stream(output, outcome.ContentType);
            }

            if (outcome.Quota is { } quota)
            {
                // No warm container its tenant's quota WarmContainers allows: as a quota met at admission, naming it.
                http.Response.Headers.RetryAfter = quota.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (outcome.HttpStatus == 429)
            {
                http.Response.Headers.RetryAfter = "1";
            }
            else if (outcome.HttpStatus == 503)
            {
                // The machine's owner needs it (docs/harvesting.md): a while, not at once.
                http.Response.Headers.RetryAfter = "10";
            }

            var extensions = new Dictionary<string, object?> { ["invocation"] = invocation, ["version"] = function.Version, ["algorithmVersion"] = served.AlgorithmVersion };
            if (outcome.Quota is { } refusal)
            {
                extensions["quota"] = refusal.Quota;
                extensions["retryAfter"] = refusal.RetryAfterSeconds;
                return TypedResults.Problem(statusCode: 429, title: "A quota of this tenant is reached", detail: outcome.Error, extensions: extensions);
            }

            if (outcome.StderrTail is not null)
            {
                extensions["stderr"] = outcome.StderrTail;
            }

            return TypedResults.Problem(statusCode: outcome.HttpStatus, title: Title(outcome.HttpStatus), detail: outcome.Error, extensions: extensions);
        }
        finally
        {
            if (!keep)
            {
                folders.Return(folder, untouched);
            }

            if (slot is not null)
            {
                await quotas.EndInvocationAsync(function.Tenant, slot);
            }
        }
    }

    /// <summary>
    /// The tenant's budget, running and rate quotas for a synchronous invoke: null when admitted (a running
    /// slot held by <paramref name="slot"/>); else 429 with Retry-After naming the quota, recorded as a
    /// refused invocation, the connection closed as for an oversized body (the body is never read);
    /// 503 when the counters are out of reach.
    /// </summary>
    private static async Task<IResult?> AdmitAsync(HttpContext http, TenantQuotas quotas, FunctionService functions, FunctionVersion function, string slot, string? caller, CancellationToken ct)
    {
        QuotaRefusal? refused;
        try
        {
            refused = await quotas.AdmitInvocationAsync(function.Tenant, slot, ct);
        }
        catch (PipelinesException e) when (e.RetryHelps)
        {
            http.Response.Headers.RetryAfter = "5";
            http.Response.Headers.Connection = "close";
            return TypedResults.Problem(statusCode: 503, title: "A service is out of reach", detail: e.Message);
        }

        if (refused is null)
        {
            return null;
        }

        var invocation = functions.RecordRefused(function, caller, refused);
        http.Response.Headers.Connection = "close";
        http.Response.Headers.RetryAfter = refused.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        http.Response.Headers["Pipelines-Invocation"] = invocation;
        return TypedResults.Problem(
            statusCode: 429,
            title: refused.IsBudget ? "The budget of this tenant is spent" : "A quota of this tenant is reached",
            detail: refused.Detail,
            extensions: new Dictionary<string, object?> { ["quota"] = refused.Quota, ["invocation"] = invocation, ["retryAfter"] = refused.RetryAfterSeconds });
    }

    private static string Title(int status) => status switch
    {
        400 => "Bad input",
        429 => "The function's queue is full",
        500 => "The function cannot run here",
        502 => "The function failed",
        503 => "The function cannot be served now",
        504 => "The function timed out",
        _ => "The function was not run",
    };

    private static async Task<Results<Ok<List<InvocationView>>, ProblemHttpResult>> InvocationsAsync(string name, int? limit, TenantContext tenant, CancellationToken ct)
    {
        var functions = tenant.Functions;
        if (await functions.Store.GetAsync(name, null, ct) is null)
        {
            return NoSuchFunction(name);
        }

        var l = Math.Clamp(limit ?? 50, 1, 1000);
        return TypedResults.Ok((await functions.Store.ListInvocationsAsync(name, l, ct)).Select(InvocationView.From).ToList());
    }

    private static async Task<Results<Ok<InvocationView>, ProblemHttpResult>> InvocationAsync(string name, string id, TenantContext tenant, CancellationToken ct)
    {
        var record = await tenant.Functions.Store.GetInvocationAsync(id, ct);
        return record is null || !string.Equals(record.Function, name, StringComparison.Ordinal) ? NoSuchInvocation(name, id) : TypedResults.Ok(InvocationView.From(record));
    }

    private static async Task<IResult> OutputAsync(string name, string id, HttpContext http, TenantContext tenant, WorkerOptions worker, CancellationToken ct)
    {
        var functions = tenant.Functions;
        var record = await functions.Store.GetInvocationAsync(id, ct);
        if (record is null || !string.Equals(record.Function, name, StringComparison.Ordinal))
        {
            return NoSuchInvocation(name, id);
        }

        if (!record.Async || record.OutputBytes is null)
        {
            return TypedResults.Problem(
                statusCode: record.Async && record.Status is InvocationStatus.Queued or InvocationStatus.Running ? 409 : 404,
                title: "No output",
                detail: record.Async
                    ? $"invocation {id} is {InvocationStatuses.Name(record.Status)}{(record.Error is null ? "" : ": " + record.Error)}"
                    : $"invocation {id} was synchronous: its output was its response and is not kept");
        }

        var folder = Path.Combine(worker.Scratch, "functions", "outputs", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, "output");
        await functions.DownloadOutputAsync(record, path, ct);
        http.Response.OnCompleted(() =>
        {
            FunctionService.DeleteScratch(folder);
            return Task.CompletedTask;
        });
        if (record.HttpStatus is { } status)
        {
            http.Response.StatusCode = status;
        }

        return TypedResults.Stream(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true), record.ContentType ?? ContentTypes.Binary);
    }

    private static ProblemHttpResult NoSuchFunction(string name) =>
        TypedResults.Problem(statusCode: 404, title: "No such function", detail: $"there is no function '{name}' (deploy one with POST /api/functions or `pipelines function deploy FILE`)");

    private static ProblemHttpResult NoSuchInvocation(string name, string id) =>
        TypedResults.Problem(statusCode: 404, title: "No such invocation", detail: $"function '{name}' has no invocation {id} (it may have been pruned: Functions:KeepInvocations)");

    [LoggerMessage(Level = LogLevel.Information, Message = "function {Name} version {Version} deployed ({What}) by {Who}")]
    private static partial void LogDeployed(ILogger logger, string name, int version, string what, string who);

    [LoggerMessage(Level = LogLevel.Information, Message = "function {Name} deleted by {Who}")]
    private static partial void LogDeleted(ILogger logger, string name, string who);
}
