using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Pipelines.Canary;
using Pipelines.Explain;
using Pipelines.Model;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Server.Access;
using Pipelines.Storage;

namespace Pipelines.Server.Api;

/// <summary>
/// The runs API under /api/runs: submit, list, one run, its tasks, cancel, and the files a run
/// wrote (logs, results, run.json). Reading needs the read policy, changing needs full.
/// </summary>
internal static partial class RunsApi
{
    private const int MaxLimit = RunCatalog.MaxLimit;

    public static RouteGroupBuilder MapRunsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/runs").WithTags("runs").RequireAuthorization(Access.Access.ReadPolicy);
        api.MapPost("/", SubmitAsync).WithMetadata(TenantAccess.Creating).RequireAuthorization(Access.Access.FullPolicy)
            .Accepts<SubmitRunRequest>("application/json", "application/yaml")
            .ProducesProblem(400).ProducesProblem(422).ProducesProblem(503)
            .WithSummary("Submit a run: a JSON {workflow, set} body, or the workflow YAML itself with ?set=key=value overrides.");
        api.MapGet("/", ListAsync).WithMetadata(TenantAccess.Listing).ProducesProblem(400).WithSummary("List runs, newest first; filter by workflow, state and since (a duration back, 2h, or a date or time); paged with offset and limit. Each run's counts include the tasks held back, by reason.");
        api.MapGet("/{runId}", GetAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(404).WithSummary("One run with its task counts, timings, and its usage and cost so far (run.json's usage block).");
        api.MapGet("/{runId}/tasks", TasksAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(400).ProducesProblem(404).WithSummary("A run's tasks by index; filter by state; paged with offset and limit.");
        api.MapPost("/{runId}/cancel", CancelAsync).WithMetadata(TenantAccess.Owned).RequireAuthorization(Access.Access.FullPolicy).ProducesProblem(404).ProducesProblem(409)
            .WithSummary("Cancel a run: queued tasks never start, running containers are stopped, the run ends cancelled.");
        api.MapGet("/{runId}/explain", ExplainRunAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(404).WithSummary("Why the run's tasks ran: how many were cached, how many ran, and the reasons counted by component.");
        api.MapGet("/{runId}/tasks/{task}/explain", ExplainTaskAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(404)
            .WithSummary("Whether a task (by index or task id) was taken from the cache and from which run, or why it ran: no earlier run, the components that changed, or a damaged cache.");
        api.MapGet("/{runId}/logs", LogsAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(404)
            .WithSummary("The step logs the run has written so far (a step's log is written when the step ends): of every task, or of one (?task= index or task id), each with its url; and the run's state, to follow it.");
        api.MapGet("/{runId}/canary", CanaryAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(404).ProducesProblem(409)
            .WithSummary("A batch canary's comparison (canary/diff.json): 404 for a run without a canary, 409 while either side is still going.");
        api.MapGet("/{runId}/files/{**path}", FileAsync).WithMetadata(TenantAccess.Owned).ProducesProblem(404).WithSummary("A file the run wrote: a task's log, a result table, run.json, provenance.");
        return api;
    }

    private static async Task<Results<Accepted<SubmittedRunView>, ProblemHttpResult>> SubmitAsync(
        HttpRequest request, RunSubmitter submitter, TenantContext tenant, ClaimsPrincipal user, ILoggerFactory logs, CancellationToken ct)
    {
        var (body, problem) = await WorkflowBody.ReadAsync(request, "submission", ct);
        if (body is null)
        {
            return problem!;
        }

        try
        {
            var canary = CanaryRequest.Parse(body.Canary.Candidate, body.Canary.Sample, body.Canary.Tolerance);

            // An API submission has no folder: the parser refuses relative local paths (baseDirectory null).
            // The run is the caller's tenant's, and its locations must be that tenant's (400 naming the field).
            var run = await submitter.SubmitAsync(body.Yaml, "the submitted workflow", baseDirectory: null, body.Set, ct, canary, tenant.Owner);
            LogSubmitted(logs.CreateLogger("Pipelines.Server.Api"), run.RunId, run.WorkflowName, Access.Access.Who(user));
            var url = RunUrl(run.RunId);
            var warnings = run.Warnings.Select(w => w.Text).ToList();
            return TypedResults.Accepted(url, new SubmittedRunView(run.RunId, url, run.WorkflowName, run.Tasks, run.Inputs, run.OutputUri, warnings, run.CanaryRunId, run.CanaryRunId is null ? null : url + "/canary"));
        }
        catch (CanaryRequestException e)
        {
            return TypedResults.Problem(statusCode: 400, title: "The canary request is not valid", detail: e.Message);
        }
        catch (PipelinesException e)
        {
            return WorkflowBody.Refusal(e, "The run was not started");
        }
    }

    private static async Task<Results<Ok<PageView<RunView>>, ProblemHttpResult>> ListAsync(
        TenantContext tenant, TimeProvider time, string? workflow, string? state, string? since, int? offset, int? limit, CancellationToken ct)
    {
        RunQuery query;
        try
        {
            if (Paging(offset, limit, 50) is not var (o, l))
            {
                return BadPaging();
            }

            query = new RunQuery(workflow, RunCatalog.ParseState(state), o, l, RunCatalog.ParseSince(since, time.GetUtcNow()));
        }
        catch (RunCatalog.FilterException e)
        {
            return TypedResults.Problem(statusCode: 400, title: "Bad filter", detail: e.Message);
        }

        var page = await RunCatalog.ListAsync(tenant.Runs, query, ct);
        return TypedResults.Ok(new PageView<RunView>(page.Items.Select(r => View(r.Run, r.Counts)).ToList(), page.Total, query.Offset, query.Limit));
    }

    private static async Task<Results<Ok<RunView>, ProblemHttpResult>> GetAsync(string runId, TenantContext tenant, CancellationToken ct)
    {
        var store = tenant.Runs;
        var run = await store.GetRunAsync(runId, ct);
        return run is null ? NoSuchRun(runId) : TypedResults.Ok(View(run, await store.CountTasksAsync(runId, ct)) with { Usage = await tenant.RunUsageAsync(run, ct) });
    }

    private static async Task<Results<Ok<PageView<TaskView>>, ProblemHttpResult>> TasksAsync(
        string runId, TenantContext tenant, string? state, int? offset, int? limit, CancellationToken ct)
    {
        var store = tenant.Runs;
        TaskState? taskState = null;
        if (state is not null)
        {
            if (!Enum.TryParse<TaskState>(state, ignoreCase: true, out var parsed) || int.TryParse(state, out _))
            {
                return TypedResults.Problem(statusCode: 400, title: "Unknown state", detail: $"state '{state}' is not one of {string.Join(", ", Enum.GetValues<TaskState>().Select(s => s.Name()))}");
            }

            taskState = parsed;
        }

        if (Paging(offset, limit, 100) is not var (o, l))
        {
            return BadPaging();
        }

        var run = await store.GetRunAsync(runId, ct);
        if (run is null)
        {
            return NoSuchRun(runId);
        }

        var steps = RunDefinition.FromJson(run.DefinitionJson).Workflow.Steps.Select(s => s.Name).ToList();
        var page = await store.QueryTasksAsync(runId, new TaskQuery(taskState, o, l), ct);
        var views = page.Items.Select(t => new TaskView(
            t.Index, t.TaskId, t.State, t.Inputs.Select(i => new InputView(i.Key, i.Size)).ToList(), t.Attempts, t.ExitCode, t.Error, t.Worker, t.StartedAt, t.FinishedAt,
            t.Attempts > 0 || t.State is TaskState.Cached or TaskState.Succeeded or TaskState.Failed
                ? steps.ToDictionary(s => s, s => FileUrl(runId, RunLayout.TaskLog(t.TaskId, s)), StringComparer.Ordinal)
                : new Dictionary<string, string>(),
            t.Hold)).ToList();
        return TypedResults.Ok(new PageView<TaskView>(views, page.Total, o, l));
    }

    private static async Task<Results<Ok<RunExplanation>, ProblemHttpResult>> ExplainRunAsync(string runId, TenantContext tenant, CancellationToken ct)
    {
        var read = await Explainer.ReadRunStoreAsync(tenant.Runs, runId, ct);
        return read is not var (rows, tasks) ? NoSuchRun(runId) : TypedResults.Ok(Explainer.Run(runId, rows, tasks));
    }

    private static async Task<Results<Ok<TaskExplanation>, ProblemHttpResult>> ExplainTaskAsync(string runId, string task, TenantContext tenant, CancellationToken ct)
    {
        var read = await Explainer.ReadRunStoreAsync(tenant.Runs, runId, ct);
        if (read is not var (rows, tasks))
        {
            return NoSuchRun(runId);
        }

        return Explainer.Task(runId, rows, tasks, task) is { } explained
            ? TypedResults.Ok(explained)
            : TypedResults.Problem(statusCode: 404, title: "No such task", detail: $"run {runId} has no task '{task}' (give its index or its task id)");
    }

    private static async Task<Results<Accepted<RunView>, ProblemHttpResult>> CancelAsync(
        string runId, TenantContext tenant, ClaimsPrincipal user, ILoggerFactory logs, CancellationToken ct)
    {
        var who = Access.Access.Who(user);
        var cancelled = await RunCatalog.CancelAsync(tenant.Runs, runId, who, ct);
        switch (cancelled.Outcome)
        {
            case RunCatalog.CancelOutcome.NotFound:
                return NoSuchRun(runId);
            case RunCatalog.CancelOutcome.Ended:
                return TypedResults.Problem(statusCode: 409, title: "The run has ended", detail: RunCatalog.Refusal(cancelled, runId));
            default:
                LogCancelled(logs.CreateLogger("Pipelines.Server.Api"), runId, who);
                return TypedResults.Accepted(RunUrl(runId), View(cancelled.Run!, cancelled.Counts!));
        }
    }

    private static async Task<Results<Ok<LogsView>, ProblemHttpResult>> LogsAsync(string runId, string? task, TenantContext tenant, ObjectStoreFactory stores, CancellationToken ct)
    {
        var store = tenant.Runs;
        var run = await store.GetRunAsync(runId, ct);
        if (run is null)
        {
            return NoSuchRun(runId);
        }

        var definition = RunDefinition.FromJson(run.DefinitionJson);
        var tasks = await RunLogs.TasksAsync(store, runId, ct);
        string? taskId = null;
        if (task is not null)
        {
            taskId = RunLogs.Find(tasks, task)?.TaskId;
            if (taskId is null)
            {
                return TypedResults.Problem(statusCode: 404, title: "No such task", detail: $"run {runId} has no task '{task}' (give its index or its task id)");
            }
        }

        var logs = await RunLogs.ListAsync(stores.Open(run.OutputUri), tasks, definition.Workflow.Steps.Select(s => s.Name).ToList(), taskId, ct);
        return TypedResults.Ok(new LogsView(runId, run.State, logs.Select(l => new LogView(l.TaskIndex, l.TaskId, l.TaskState, l.Step, FileUrl(runId, l.Key))).ToList()));
    }

    private static async Task<Results<FileContentHttpResult, ProblemHttpResult>> FileAsync(
        string runId, string path, HttpContext http, TenantContext tenant, ObjectStoreFactory stores, CancellationToken ct)
    {
        var store = tenant.Runs;
        var run = await store.GetRunAsync(runId, ct);
        if (run is null)
        {
            return NoSuchRun(runId);
        }

        var segments = path.Split('/');
        if (segments.Any(s => s is "" or "." or ".." || s.Contains('\\', StringComparison.Ordinal)))
        {
            return TypedResults.Problem(statusCode: 404, title: "No such file", detail: $"'{path}' is not a file of run {runId}");
        }

        var output = stores.Open(run.OutputUri);
        try
        {
            var bytes = await output.Store.ReadAllAsync(output.Key(path), ct);
            if (path.EndsWith(".html", StringComparison.Ordinal))
            {
                // report.html is drawn by the engine and needs nothing from anywhere: it may load nothing either.
                http.Response.Headers.ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";
            }

            return TypedResults.File(bytes, ContentType(path), fileDownloadName: path.EndsWith(".parquet", StringComparison.Ordinal) ? segments[^1] : null);
        }
        catch (ObjectNotFoundException)
        {
            return TypedResults.Problem(statusCode: 404, title: "No such file", detail: $"run {runId} has no file '{path}' (yet)");
        }
    }

    private static async Task<Results<FileContentHttpResult, ProblemHttpResult>> CanaryAsync(string runId, TenantContext tenant, ObjectStoreFactory stores, CancellationToken ct)
    {
        var store = tenant.Runs;
        var run = await store.GetRunAsync(runId, ct);
        if (run is null)
        {
            return NoSuchRun(runId);
        }

        if (RunDefinition.FromJson(run.DefinitionJson).Canary is not { Role: CanaryRole.Current } link)
        {
            return TypedResults.Problem(statusCode: 404, title: "No canary", detail: $"run {runId} was not submitted with a candidate");
        }

        var candidate = await store.GetRunAsync(link.CandidateRunId, ct);
        if (!run.State.IsTerminal() || candidate is null || !candidate.State.IsTerminal())
        {
            return TypedResults.Problem(statusCode: 409, title: "Not compared yet", detail: $"run {runId} is {run.State.Name()} and its candidate run {link.CandidateRunId} is {candidate?.State.Name() ?? "not recorded"}: the comparison is written when both have ended");
        }

        var output = stores.Open(run.OutputUri);
        try
        {
            return TypedResults.File(await output.Store.ReadAllAsync(output.Key(CanaryLink.DiffJson), ct), "application/json");
        }
        catch (ObjectNotFoundException)
        {
            return TypedResults.Problem(statusCode: 404, title: "No comparison", detail: $"the candidate run {link.CandidateRunId} ended {candidate.State.Name()} without a comparison{(candidate.Error is null ? "" : ": " + candidate.Error)}");
        }
    }

    internal static RunView View(RunRecord run, TaskCounts counts) => new(
        run.RunId, run.WorkflowName, run.State, CountsView.From(counts), run.CreatedAt, run.FinishedAt,
        Math.Round(((run.FinishedAt ?? DateTimeOffset.UtcNow) - run.CreatedAt).TotalSeconds, 3),
        run.OutputUri, run.StopReason, run.Error, RunUrl(run.RunId), RunUrl(run.RunId) + "/tasks", FileUrl(run.RunId, RunLayout.RunJson));

    internal static string RunUrl(string runId) => "/api/runs/" + Uri.EscapeDataString(runId);

    internal static string FileUrl(string runId, string key) => RunUrl(runId) + "/files/" + string.Join('/', key.Split('/').Select(Uri.EscapeDataString));

    private static (int Offset, int Limit)? Paging(int? offset, int? limit, int defaultLimit)
    {
        var o = offset ?? 0;
        var l = limit ?? defaultLimit;
        return o < 0 || l < 1 || l > MaxLimit ? null : (o, l);
    }

    private static ProblemHttpResult BadPaging() =>
        TypedResults.Problem(statusCode: 400, title: "Bad paging", detail: $"offset must be 0 or more, and limit between 1 and {MaxLimit}");

    private static ProblemHttpResult NoSuchRun(string runId) =>
        TypedResults.Problem(statusCode: 404, title: "No such run", detail: $"there is no run {runId}");

    private static string ContentType(string path) => Path.GetExtension(path) switch
    {
        ".log" or ".txt" or ".tsv" => "text/plain; charset=utf-8",
        ".csv" => "text/csv; charset=utf-8",
        ".json" => "application/json",
        ".html" => "text/html; charset=utf-8",
        ".yaml" or ".yml" => "application/yaml",
        _ => "application/octet-stream",
    };

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} of {Workflow} submitted by {Who}")]
    private static partial void LogSubmitted(ILogger logger, string runId, string workflow, string who);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} cancelled by {Who}")]
    private static partial void LogCancelled(ILogger logger, string runId, string who);
}
