using System.Globalization;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Runs;

/// <summary>One step log of a run: its task (index when known, id, state when known), the step, and its key in the run folder.</summary>
public sealed record RunLog(int? TaskIndex, string TaskId, string? TaskState, string Step, string Key);

/// <summary>A task of a run as the logs name it: its index, id and state.</summary>
public sealed record RunLogTask(int Index, string TaskId, string State);

/// <summary>
/// The step logs a run has written, for `pipelines logs` and GET /api/runs/{id}/logs: one home
/// for which logs there are and in what order. A step's log (every attempt's output with what
/// the engine did) is written to tasks/&lt;task-id&gt;/&lt;step&gt;.log when the step ends, so
/// the run folder is listed, and its tasks are named from the run store (a run of PostgreSQL)
/// or its provenance (an embedded run that has ended), in task order, each task's steps in the
/// workflow's order.
/// </summary>
public static class RunLogs
{
    /// <summary>
    /// The logs under <paramref name="folder"/> (a run's folder), of one task (its id) or of all
    /// (null); <paramref name="tasks"/> names them, <paramref name="steps"/> orders a task's logs.
    /// </summary>
    public static async Task<IReadOnlyList<RunLog>> ListAsync(StorageLocation folder, IReadOnlyList<RunLogTask>? tasks, IReadOnlyList<string>? steps, string? taskId, CancellationToken ct)
    {
        var byId = (tasks ?? []).GroupBy(t => t.TaskId, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
        var prefix = "tasks/" + (taskId is null ? "" : taskId + "/");
        var logs = new List<RunLog>();
        await foreach (var o in folder.Store.ListAsync(folder.Key(prefix), ct).ConfigureAwait(false))
        {
            // tasks/<task-id>/<step>.log: a task's kept outputs are a folder deeper (tasks/<task-id>/<step>/...).
            var relative = o.Key[folder.Key("").Length..].Split('/');
            if (relative.Length != 3 || !relative[2].EndsWith(".log", StringComparison.Ordinal))
            {
                continue;
            }

            var task = byId.GetValueOrDefault(relative[1]);
            logs.Add(new RunLog(task?.Index, relative[1], task?.State, relative[2][..^4], string.Join('/', relative)));
        }

        var order = (steps ?? []).Select((s, i) => (s, i)).ToDictionary(x => x.s, x => x.i, StringComparer.Ordinal);
        return logs
            .OrderBy(l => l.TaskIndex ?? int.MaxValue).ThenBy(l => l.TaskId, StringComparer.Ordinal)
            .ThenBy(l => order.GetValueOrDefault(l.Step, int.MaxValue)).ThenBy(l => l.Step, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// A task named by a user: its index (digits) or its task id; null when the run has no such
    /// task (<see cref="TaskName"/>).
    /// </summary>
    public static RunLogTask? Find(IReadOnlyList<RunLogTask> tasks, string task)
    {
        var names = TaskName.Matcher(task);
        return tasks.FirstOrDefault(t => names(t.Index, t.TaskId));
    }

    /// <summary>The tasks of a run in the run store, as the logs name them.</summary>
    public static async Task<IReadOnlyList<RunLogTask>> TasksAsync(IRunStore store, string runId, CancellationToken ct) =>
        (await store.GetTasksAsync(runId, ct).ConfigureAwait(false)).Select(t => new RunLogTask(t.Index, t.TaskId, t.State.Name())).ToList();

    /// <summary>The tasks of an ended run from its provenance rows (the last row of each task says how it ended).</summary>
    public static IReadOnlyList<RunLogTask> TasksOf(IEnumerable<ProvenanceRow> rows) =>
        rows.GroupBy(r => r.TaskIndex).Select(g => new RunLogTask(g.Key, g.Last().TaskId, g.Last().Status)).OrderBy(t => t.Index).ToList();

    /// <summary>The header a log is printed under when several are: the task, the step and how the task stands.</summary>
    public static string Header(RunLog log) =>
        $"==> task {(log.TaskIndex is { } i ? i.ToString(CultureInfo.InvariantCulture) + " " : "")}({log.TaskId}) step {log.Step}{(log.TaskState is null ? "" : ": " + log.TaskState)} <==";
}
