using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Runs;
using Pipelines.RunStore;

namespace Pipelines.Worker;

/// <summary>
/// A failed batch of plain files (no group_by, no sample sheet) under on_error: continue is
/// split, so that one bad input does not cost the results of the others. Only a failure that
/// one input can cause splits: an exit code or a stage-in error, not a timeout, an OOM kill or
/// a quota (each input run alone would pay it again: one broken image in a batch of 1,000
/// would cost 1,001 timeouts).
/// </summary>
internal static class BatchSplit
{
    public static bool Applies(RunRecord run, TaskRecord task, Workflow workflow) =>
        workflow.OnError == OnError.Continue && task.Inputs.Count > 1 && Planner.CanStream(workflow) && run.StopReason is null;

    /// <summary>
    /// The batch ends split and each of its inputs becomes a task of its own, with the task id
    /// a plan of batch 1 would give it: per-file outcomes, provenance and retries, and later
    /// runs can reuse their results.
    /// </summary>
    public static TaskEnd.Split Of(RunRecord run, TaskRecord task, RunDefinition definition, TaskOutcome failed, IReadOnlyList<ProvenanceRow> rows)
    {
        var none = new Dictionary<string, string>();
        var children = task.Inputs
            .Select(i => new TaskRecord(run.RunId, -1, Planner.TaskId(definition.Workflow, definition.ImageDigests, [i], none), TaskState.Queued, [i], none, 0, null, null, null, null, null))
            .ToList();
        var note = $"{failed.Error} [the batch of {task.Inputs.Count} inputs was split: each input runs again as a task of its own]";
        return new TaskEnd.Split(failed with { Error = note }, rows, children);
    }
}
