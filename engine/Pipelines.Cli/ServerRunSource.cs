using System.Globalization;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Server.Api;

namespace Pipelines.Cli;

/// <summary>The runs of a `pipelines server`, through its REST API (/api/runs and below), where the server's RunCatalog answers.</summary>
internal sealed class ServerRunSource(ServerClient client) : IRunSource
{
    public string Name => client.Server;

    public async Task<RunDocument> GetAsync(string runId, CancellationToken ct)
    {
        var run = await client.GetRunAsync(runId, ct).ConfigureAwait(false);
        var summary = run.State.IsTerminal() ? await client.GetRunSummaryAsync(runId, ct).ConfigureAwait(false) : null;
        var failed = run.Counts.Failed == 0 ? [] : (await client.GetTasksAsync(runId, "failed", 5, ct).ConfigureAwait(false)).Items;
        var held = run.Counts.Held == 0 ? [] : (await client.GetTasksAsync(runId, "queued", 200, ct).ConfigureAwait(false)).Items;
        return Document(run) with
        {
            Results = summary?.Results,
            Problems = summary?.Problems,
            Warnings = summary?.Warnings,
            Usage = summary?.Usage ?? run.Usage,
            FailedTasks = failed.Take(5).Select(t => new RunDocument.FailedTask(t.Index, t.TaskId, t.ExitCode, (t.Error ?? "").Split('\n')[0], t.Inputs.Take(2).Select(i => i.Key).ToList())).ToList(),
            HeldTasks = held.Where(t => t.Hold is not null).Take(3).Select(t => new RunDocument.HeldTask(t.Index, t.TaskId, t.Hold!.Reason, t.Hold.Detail, t.Hold.Worker, t.Hold.Since)).ToList(),
        };
    }

    public async Task<Page<RunDocument>> ListAsync(RunQuery query, CancellationToken ct)
    {
        var q = new List<string> { "offset=" + query.Offset.ToString(CultureInfo.InvariantCulture), "limit=" + query.Limit.ToString(CultureInfo.InvariantCulture) };
        if (query.Workflow is { } w)
        {
            q.Add("workflow=" + Uri.EscapeDataString(w));
        }

        if (query.State is { } s)
        {
            q.Add("state=" + s.Name());
        }

        if (query.Since is { } since)
        {
            // Resolved here, so that "2h" means two hours before the user's command, whatever the server's clock.
            q.Add("since=" + Uri.EscapeDataString(since.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture)));
        }

        var page = await client.ListRunsAsync(string.Join('&', q), ct).ConfigureAwait(false);
        return new Page<RunDocument>(page.Items.Select(Document).ToList(), page.Total);
    }

    public async Task<RunDocument> CancelAsync(string runId, string who, CancellationToken ct) =>
        Document(await client.CancelRunAsync(runId, ct).ConfigureAwait(false));

    public async Task<(bool Ended, IReadOnlyList<RunLog> Logs)> LogsAsync(string runId, string? task, CancellationToken ct)
    {
        var logs = await client.GetLogsAsync(runId, task, ct).ConfigureAwait(false);
        // GET /api/runs/{id}/files/{key}, the key's segments escaped: the key is what follows.
        var prefix = $"/api/runs/{Uri.EscapeDataString(runId)}/files/";
        return (logs.State.IsTerminal(), logs.Logs.Select(l => new RunLog(l.Task, l.TaskId, l.TaskState, l.Step, Uri.UnescapeDataString(l.Url[prefix.Length..]))).ToList());
    }

    public Task<byte[]?> ReadAsync(string runId, string key, CancellationToken ct) => client.GetFileAsync(runId, key, ct);

    public ValueTask DisposeAsync()
    {
        client.Dispose();
        return ValueTask.CompletedTask;
    }

    private static RunDocument Document(RunView run) =>
        new(run.RunId, run.Workflow, run.State.Name(), RunDocument.TaskCountsDocument.From(run.Counts.ToCounts()), run.CreatedAt, run.FinishedAt, run.DurationSeconds, run.OutputUri, run.StopReason, run.Error);
}
