using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Pipelines.Explain;
using Pipelines.Functions;
using Pipelines.Gather;
using Pipelines.Model;
using Pipelines.Server.Api;

namespace Pipelines.Cli;

/// <summary>
/// The CLI's side of the REST API (`--server URL`): submit, read a run, cancel. Errors become
/// the same exceptions the in-process path throws, so exit codes and messages stay alike.
/// </summary>
internal sealed class ServerClient : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        TypeInfoResolver = ServerClientJson.Default,
    };

    private readonly HttpClient _http;
    private readonly string _server;

    public ServerClient(string server, string? key, Pipelines.Tenancy.TenantId? tenant = null)
    {
        _server = server.TrimEnd('/');
        _http = new HttpClient { BaseAddress = new Uri(_server + "/"), Timeout = TimeSpan.FromMinutes(5) };
        if (!string.IsNullOrEmpty(key))
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        if (tenant is { } t)
        {
            // The server's one way of naming the tenant an admin key works in (Access.ScopeOf); a tenant's own key ignores it.
            _http.DefaultRequestHeaders.Add(Pipelines.Server.Access.Access.TenantHeader, t.Value);
        }
    }

    /// <summary>The server's base URL, as messages name it.</summary>
    public string Server => _server;

    /// <summary>A view's metadata under <see cref="Json"/>'s options: made at build time (<see cref="ServerClientJson"/>); a view not listed there throws.</summary>
    private static JsonTypeInfo<T> Info<T>() => (JsonTypeInfo<T>)Json.GetTypeInfo(typeof(T));

    /// <summary>--key, or PIPELINES_SERVER_KEY.</summary>
    public static string? KeyFrom(string? option) =>
        option ?? (Environment.GetEnvironmentVariable("PIPELINES_SERVER_KEY") is { Length: > 0 } k ? k : null);

    public async Task<SubmittedRunView> SubmitAsync(string yaml, string source, IReadOnlyList<string> set, CancellationToken ct, (string? Candidate, string? Sample, double? Tolerance) canary = default)
    {
        var body = new SubmitRunRequest(yaml, set, Candidate: canary.Candidate, Sample: canary.Sample, Tolerance: canary.Tolerance);
        using var response = await SendAsync(() => _http.PostAsJsonAsync("api/runs", body, Info<SubmitRunRequest>(), ct)).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.BadRequest && canary.Candidate is not null)
        {
            var refused = await ReadProblemAsync(response, ct).ConfigureAwait(false);
            if (refused.Title == "The canary request is not valid" && refused.Detail is { } detail)
            {
                throw new Pipelines.Canary.CanaryRequestException(detail);
            }
        }

        if (response.StatusCode == HttpStatusCode.BadRequest)
        {
            var problem = await ReadProblemAsync(response, ct).ConfigureAwait(false);
            if (problem.Problems is { Count: > 0 } problems)
            {
                throw new WorkflowInvalidException(source, Problems(problems));
            }
        }

        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<SubmittedRunView>(), ct).ConfigureAwait(false))!;
    }

    public async Task<RunView> GetRunAsync(string runId, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync("api/runs/" + Uri.EscapeDataString(runId), ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<RunView>(), ct).ConfigureAwait(false))!;
    }

    /// <summary>GET /api/runs with the query string given (workflow, state, since, offset, limit).</summary>
    public async Task<PageView<RunView>> ListRunsAsync(string query, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync("api/runs?" + query, ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<PageView<RunView>>(), ct).ConfigureAwait(false))!;
    }

    /// <summary>POST /api/runs/{id}/cancel: the run as it is after the request (404 no such run, 409 it has ended).</summary>
    public async Task<RunView> CancelRunAsync(string runId, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.PostAsync($"api/runs/{Uri.EscapeDataString(runId)}/cancel", null, ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<RunView>(), ct).ConfigureAwait(false))!;
    }

    /// <summary>GET /api/runs/{id}/logs: the step logs written so far (of one task, by index or id, or all) and the run's state.</summary>
    public async Task<LogsView> GetLogsAsync(string runId, string? task, CancellationToken ct)
    {
        var url = $"api/runs/{Uri.EscapeDataString(runId)}/logs" + (task is null ? "" : "?task=" + Uri.EscapeDataString(task));
        using var response = await SendAsync(() => _http.GetAsync(url, ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<LogsView>(), ct).ConfigureAwait(false))!;
    }

    /// <summary>GET /api/workers: every live worker's harvesting figures.</summary>
    public async Task<List<WorkerFigures>> GetWorkersAsync(CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync("api/workers", ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<List<WorkerFigures>>(), ct).ConfigureAwait(false))!;
    }

    /// <summary>One worker as GET /api/workers answers it.</summary>
    public sealed record WorkerFigures(string Worker, Pipelines.Harvest.HarvestStatus Status);

    /// <summary>GET /api/workflows: the registered triggers.</summary>
    public async Task<List<Pipelines.Triggers.TriggerSummary>> GetTriggersAsync(CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync("api/workflows", ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<List<Pipelines.Triggers.TriggerSummary>>(), ct).ConfigureAwait(false))!;
    }

    public async Task<PageView<TaskView>> GetTasksAsync(string runId, string state, int limit, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync($"api/runs/{Uri.EscapeDataString(runId)}/tasks?state={state}&limit={limit}", ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<PageView<TaskView>>(), ct).ConfigureAwait(false))!;
    }

    /// <summary>A file of a run's folder (GET /api/runs/{id}/files/{path}), or null when it is not there.</summary>
    public async Task<byte[]?> GetFileAsync(string runId, string path, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync($"api/runs/{Uri.EscapeDataString(runId)}/files/{path}", ct)).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        await EnsureAsync(response, ct).ConfigureAwait(false);
        return await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
    }

    public async Task<RunSummary?> GetRunSummaryAsync(string runId, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync($"api/runs/{Uri.EscapeDataString(runId)}/files/run.json", ct)).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        await EnsureAsync(response, ct).ConfigureAwait(false);
        return RunSummary.FromJson(await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false));
    }

    /// <summary>Deploys a function file; a refused file throws <see cref="FunctionInvalidException"/> with its problems.</summary>
    /// <summary>POST /api/algorithms/{name}/versions/{version} with the tarball streamed from the file as the body.</summary>
    public async Task<Pipelines.Algorithms.PushResult> PushAlgorithmAsync(string name, string version, string tarball, string? digest, string? notes, CancellationToken ct)
    {
        await using var file = File.OpenRead(tarball);
        using var content = new StreamContent(file, 1 << 16);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-tar");
        var query = string.Join('&', new[] { digest is null ? null : "digest=" + Uri.EscapeDataString(digest), notes is null ? null : "notes=" + Uri.EscapeDataString(notes) }.Where(q => q is not null));
        var url = $"api/algorithms/{Uri.EscapeDataString(name)}/versions/{Uri.EscapeDataString(version)}" + (query.Length > 0 ? "?" + query : "");
        using var response = await SendAsync(() => _http.PostAsync(url, content, ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<Pipelines.Algorithms.PushResult>(), ct).ConfigureAwait(false))!;
    }

    public async Task<DeployedView> DeployFunctionAsync(string yaml, string source, CancellationToken ct)
    {
        using var content = new StringContent(yaml, System.Text.Encoding.UTF8, "application/yaml");
        using var response = await SendAsync(() => _http.PostAsync("api/functions", content, ct)).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.BadRequest)
        {
            var problem = await ReadProblemAsync(response, ct).ConfigureAwait(false);
            if (problem.Problems is { Count: > 0 } problems)
            {
                throw new FunctionInvalidException(source, Problems(problems));
            }
        }

        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<DeployedView>(), ct).ConfigureAwait(false))!;
    }

    public async Task<List<FunctionView>> ListFunctionsAsync(CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync("api/functions", ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<List<FunctionView>>(), ct).ConfigureAwait(false))!;
    }

    public async Task<FunctionDetailView> GetFunctionAsync(string name, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync("api/functions/" + Uri.EscapeDataString(name), ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<FunctionDetailView>(), ct).ConfigureAwait(false))!;
    }

    public async Task DeleteFunctionAsync(string name, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.DeleteAsync("api/functions/" + Uri.EscapeDataString(name), ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Invokes a function with a file as the body (streamed, named by ?filename=) and copies the
    /// response to <paramref name="output"/>; a refusal throws with the problem's detail and the
    /// algorithm's last lines. Returns the response's content type and the invocation id.
    /// </summary>
    public async Task<(string? ContentType, string? Invocation)> InvokeAsync(string name, string file, Stream output, CancellationToken ct)
    {
        await using var body = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true);
        using var content = new StreamContent(body);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(ContentTypes.FromName(file));
        var url = $"api/functions/{Uri.EscapeDataString(name)}/invoke?filename={Uri.EscapeDataString(Path.GetFileName(file))}";
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = content };
        using var response = await SendAsync(() => _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct)).ConfigureAwait(false);
        var invocation = response.Headers.TryGetValues("Pipelines-Invocation", out var ids) ? ids.FirstOrDefault() : null;
        if (!response.IsSuccessStatusCode && response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            var problem = await ReadProblemAsync(response, ct).ConfigureAwait(false);
            var what = problem.Detail ?? problem.Title ?? response.ReasonPhrase;
            var tail = problem.Stderr is { Length: > 0 } s ? Environment.NewLine + "  its output ended with:" + Environment.NewLine + "  " + s.ReplaceLineEndings(Environment.NewLine + "  ") : "";
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                throw new NotFoundException($"{name}: 404 {what}");
            }

            throw new FunctionCallException($"{name}: {(int)response.StatusCode} {what}", tail, retryHelps: (int)response.StatusCode is 503 or 429);
        }

        await using (var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false))
        {
            await stream.CopyToAsync(output, ct).ConfigureAwait(false);
        }

        if (!response.IsSuccessStatusCode)
        {
            // An http-mode function's own error answer: its body was copied out as it is.
            throw new FunctionCallException($"{name}: the function answered {(int)response.StatusCode}", "");
        }

        return (response.Content.Headers.ContentType?.ToString(), invocation);
    }

    public async Task<RunExplanation> ExplainRunAsync(string runId, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync($"api/runs/{Uri.EscapeDataString(runId)}/explain", ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<RunExplanation>(), ct).ConfigureAwait(false))!;
    }

    public async Task<TaskExplanation> ExplainTaskAsync(string runId, string task, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync($"api/runs/{Uri.EscapeDataString(runId)}/tasks/{Uri.EscapeDataString(task)}/explain", ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(Info<TaskExplanation>(), ct).ConfigureAwait(false))!;
    }

    /// <summary>GET /api/usage with the query string given: the server's JSON, as it wrote it.</summary>
    public async Task<string> GetUsageAsync(string query, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync("api/usage?" + query, ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
    }

    /// <summary>GET /api/usage/records (csv or json lines), streamed into <paramref name="to"/>.</summary>
    public async Task DownloadUsageAsync(string query, Stream to, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync("api/usage/records?" + query, HttpCompletionOption.ResponseHeadersRead, ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        await response.Content.CopyToAsync(to, ct).ConfigureAwait(false);
    }

    public void Dispose() => _http.Dispose();

    private async Task<HttpResponseMessage> SendAsync(Func<Task<HttpResponseMessage>> send)
    {
        try
        {
            return await send().ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new PipelinesException($"cannot reach the server {_server}: {e.GetBaseException().Message}", retryHelps: true, e);
        }
    }

    private async Task EnsureAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var problem = await ReadProblemAsync(response, ct).ConfigureAwait(false);
        var what = problem.Detail ?? problem.Title ?? response.ReasonPhrase;
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            throw new NotFoundException($"{_server}: 404 {what}");
        }

        throw new PipelinesException($"{_server}: {(int)response.StatusCode} {what}", retryHelps: (int)response.StatusCode >= 500);
    }

    private static List<WorkflowProblem> Problems(List<ProblemView> problems) =>
        problems.Select(p => new WorkflowProblem(p.Path, p.Message, p.Line, p.Column)).ToList();

    private static async Task<Problem> ReadProblemAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            return await response.Content.ReadFromJsonAsync(Info<Problem>(), ct).ConfigureAwait(false) ?? new Problem(null, null, null);
        }
        catch (Exception e) when (e is JsonException or NotSupportedException)
        {
            // Not a problem details body (a proxy's page, an empty answer): the status code says enough.
            return new Problem(null, null, null);
        }
    }

    internal sealed record Problem(string? Title, string? Detail, List<ProblemView>? Problems, string? Stderr = null);
}

/// <summary>An invocation the server refused or the function failed: the message, then the algorithm's last lines (printed below it); a retry may help after a 503 (no capacity now) or a 429 (its queue is full).</summary>
internal sealed class FunctionCallException(string message, string details, bool retryHelps = false) : PipelinesException(message, retryHelps)
{
    public string Details { get; } = details;
}
