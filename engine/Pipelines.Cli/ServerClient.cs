using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using Pipelines.Explain;
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
    };

    private readonly HttpClient _http;
    private readonly string _server;

    public ServerClient(string server, string? key)
    {
        _server = server.TrimEnd('/');
        _http = new HttpClient { BaseAddress = new Uri(_server + "/"), Timeout = TimeSpan.FromMinutes(5) };
        if (!string.IsNullOrEmpty(key))
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
    }

    /// <summary>--key, or PIPELINES_SERVER_KEY.</summary>
    public static string? KeyFrom(string? option) =>
        option ?? (Environment.GetEnvironmentVariable("PIPELINES_SERVER_KEY") is { Length: > 0 } k ? k : null);

    public async Task<SubmittedRunView> SubmitAsync(string yaml, string source, IReadOnlyList<string> set, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.PostAsJsonAsync("api/runs", new SubmitRunRequest(yaml, set), Json, ct)).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.BadRequest)
        {
            var problem = await ReadProblemAsync(response, ct).ConfigureAwait(false);
            if (problem.Problems is { Count: > 0 } problems)
            {
                throw new WorkflowInvalidException(source, problems.Select(p => new WorkflowProblem(p.Path, p.Message, p.Line, p.Column)).ToList());
            }
        }

        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync<SubmittedRunView>(Json, ct).ConfigureAwait(false))!;
    }

    public async Task<RunView> GetRunAsync(string runId, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync("api/runs/" + Uri.EscapeDataString(runId), ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync<RunView>(Json, ct).ConfigureAwait(false))!;
    }

    public async Task<PageView<TaskView>> GetTasksAsync(string runId, string state, int limit, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync($"api/runs/{Uri.EscapeDataString(runId)}/tasks?state={state}&limit={limit}", ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync<PageView<TaskView>>(Json, ct).ConfigureAwait(false))!;
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

    public async Task<RunExplanation> ExplainRunAsync(string runId, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync($"api/runs/{Uri.EscapeDataString(runId)}/explain", ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync<RunExplanation>(Json, ct).ConfigureAwait(false))!;
    }

    public async Task<TaskExplanation> ExplainTaskAsync(string runId, string task, CancellationToken ct)
    {
        using var response = await SendAsync(() => _http.GetAsync($"api/runs/{Uri.EscapeDataString(runId)}/tasks/{Uri.EscapeDataString(task)}/explain", ct)).ConfigureAwait(false);
        await EnsureAsync(response, ct).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync<TaskExplanation>(Json, ct).ConfigureAwait(false))!;
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
        throw new PipelinesException($"{_server}: {(int)response.StatusCode} {what}", retryHelps: (int)response.StatusCode >= 500);
    }

    private static async Task<Problem> ReadProblemAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            return await response.Content.ReadFromJsonAsync<Problem>(Json, ct).ConfigureAwait(false) ?? new Problem(null, null, null);
        }
        catch (Exception e) when (e is JsonException or NotSupportedException)
        {
            // Not a problem details body (a proxy's page, an empty answer): the status code says enough.
            return new Problem(null, null, null);
        }
    }

    private sealed record Problem(string? Title, string? Detail, List<ProblemView>? Problems);
}
