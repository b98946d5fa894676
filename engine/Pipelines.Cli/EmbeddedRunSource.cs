using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipelines.Explain;
using Pipelines.Gather;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Worker;

namespace Pipelines.Cli;

/// <summary>
/// This machine's embedded runs (no PostgreSQL): the run index (RunIndex) names each run's
/// folder, an ended run's run.json and provenance say the rest, and a run still going is read
/// from what its process publishes beside the index (its counts) and asked through it (a cancel).
/// </summary>
internal sealed class EmbeddedRunSource(IHost host) : IRunSource
{
    private static readonly TimeSpan CancelTaken = TimeSpan.FromSeconds(15);
    private readonly ObjectStoreFactory _stores = host.Services.GetRequiredService<ObjectStoreFactory>();

    public string Name => "this machine's embedded runs (" + RunIndex.Folder + ")";

    public async Task<RunDocument> GetAsync(string runId, CancellationToken ct)
    {
        var entry = Entry(runId);
        var document = await DocumentAsync(entry, ct).ConfigureAwait(false);
        if (document.Ended && document.State != RunDocument.Interrupted && document.Counts is { Failed: > 0 })
        {
            // The failed tasks of an ended run are in its provenance: the last row of each failed task says why.
            var rows = await Explainer.ReadRunFolderAsync(_stores.Open(entry.OutputUri), Scratch, ct).ConfigureAwait(false);
            var failed = rows.GroupBy(r => r.TaskIndex).Select(g => g.Last()).Where(r => r.Status == "failed").Take(5)
                .Select(r => new RunDocument.FailedTask(r.TaskIndex, r.TaskId, r.ExitCode, (r.Error ?? "").Split('\n')[0], r.Inputs.Take(2).Select(i => i.Key).ToList())).ToList();
            document = document with { FailedTasks = failed };
        }

        return document;
    }

    public async Task<Page<RunDocument>> ListAsync(RunQuery query, CancellationToken ct)
    {
        var runs = new List<RunDocument>();
        foreach (var entry in RunIndex.All())
        {
            var run = await DocumentAsync(entry, ct).ConfigureAwait(false);
            var state = Enum.TryParse<RunState>(run.State, ignoreCase: true, out var s) ? s : (RunState?)null;

            // RunQuery.Matches, the rule the run stores keep; an interrupted run matches no state.
            if ((query.State is null || state is not null) && query.Matches(run.Workflow ?? "", state ?? RunState.Running, run.CreatedAt ?? entry.RecordedAt))
            {
                runs.Add(run);
            }
        }

        var ordered = runs.OrderByDescending(r => r.CreatedAt).ThenBy(r => r.RunId, StringComparer.Ordinal).ToList();
        return new Page<RunDocument>(ordered.Skip(query.Offset).Take(query.Limit).ToList(), ordered.Count);
    }

    public async Task<RunDocument> CancelAsync(string runId, string who, CancellationToken ct)
    {
        var entry = Entry(runId);
        var run = await DocumentAsync(entry, ct).ConfigureAwait(false);
        if (run.Ended)
        {
            throw new PipelinesException(run.State == RunDocument.Interrupted
                ? $"run {runId} did not end, but the process that ran it is gone: there is nothing left to cancel (an embedded run lives in its process)"
                : $"run {runId} ended {run.State}; there is nothing to cancel", retryHelps: false);
        }

        // The run lives in another process's memory: ask that process, which cancels it as the server would (RunCatalog).
        RunIndex.RequestCancel(runId, who);
        var deadline = DateTimeOffset.UtcNow + CancelTaken;
        while (RunIndex.CancelPending(runId))
        {
            if (DateTimeOffset.UtcNow > deadline || RunIndex.GetLive(runId) is null)
            {
                throw new PipelinesException($"the process running {runId} did not take the cancel within {CancelTaken.TotalSeconds:0} s (is it stopped? Ctrl+C in its terminal ends it too)", retryHelps: true);
            }

            await Task.Delay(200, ct).ConfigureAwait(false);
        }

        return await DocumentAsync(entry, ct).ConfigureAwait(false);
    }

    public async Task<(bool Ended, IReadOnlyList<RunLog> Logs)> LogsAsync(string runId, string? task, CancellationToken ct)
    {
        var entry = Entry(runId);
        var folder = _stores.Open(entry.OutputUri);
        var run = await DocumentAsync(entry, ct).ConfigureAwait(false);

        // Tasks are named from the provenance once the run has ended; before, by their ids alone.
        IReadOnlyList<RunLogTask> tasks = [];
        if (run.Ended && run.State != RunDocument.Interrupted)
        {
            tasks = RunLogs.TasksOf(await Explainer.ReadRunFolderAsync(folder, Scratch, ct).ConfigureAwait(false));
        }

        string? taskId = null;
        if (task is not null)
        {
            taskId = RunLogs.Find(tasks, task)?.TaskId
                ?? (tasks.Count == 0 && !task.All(char.IsAsciiDigit) ? task
                : throw new NotFoundException(tasks.Count == 0
                    ? $"run {runId} has not ended: name the task by its id (its index is known once the run has ended)"
                    : $"run {runId} has no task '{task}' (give its index or its task id)"));
        }

        return (run.Ended, await RunLogs.ListAsync(folder, tasks, null, taskId, ct).ConfigureAwait(false));
    }

    public async Task<byte[]?> ReadAsync(string runId, string key, CancellationToken ct)
    {
        var folder = _stores.Open(Entry(runId).OutputUri);
        try
        {
            return await folder.Store.ReadAllAsync(folder.Key(key), ct).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
    }

    public ValueTask DisposeAsync()
    {
        host.Dispose();
        return ValueTask.CompletedTask;
    }

    private string Scratch => host.Services.GetRequiredService<WorkerOptions>().Scratch;

    private static RunIndex.Entry Entry(string runId) =>
        RunIndex.Get(runId) ?? throw new NotFoundException($"no run {runId} is known here (embedded runs are recorded in {RunIndex.Folder}; configure Postgres, or --server, to see runs of other machines)");

    /// <summary>An embedded run: its run.json once it has ended; before, what its process publishes, or interrupted when that process is gone.</summary>
    private async Task<RunDocument> DocumentAsync(RunIndex.Entry entry, CancellationToken ct)
    {
        try
        {
            return RunDocument.From(await RunSummary.ReadAsync(_stores.Open(entry.OutputUri), ct).ConfigureAwait(false)) with { OutputUri = entry.OutputUri };
        }
        catch (ObjectNotFoundException)
        {
            // Not ended: below.
        }

        if (RunIndex.GetLive(entry.RunId) is { } live)
        {
            return new RunDocument(entry.RunId, entry.Workflow, live.State, live.Counts is null ? null : RunDocument.TaskCountsDocument.From(live.Counts), entry.RecordedAt, null, null, entry.OutputUri, null, null)
            {
                Note = $"running in process {live.Pid} on this machine; counts as of {live.UpdatedAt.UtcDateTime:u}",
            };
        }

        return new RunDocument(entry.RunId, entry.Workflow, RunDocument.Interrupted, null, entry.RecordedAt, null, null, entry.OutputUri, null, null)
        {
            Note = "not finished: no run.json, and the process that ran it is gone (an embedded run ends with its process)",
        };
    }
}
