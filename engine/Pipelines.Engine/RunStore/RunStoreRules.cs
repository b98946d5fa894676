namespace Pipelines.RunStore;

/// <summary>The checks on what a caller gives a run store, shared so that both stores refuse the same things.</summary>
internal static class RunStoreRules
{
    /// <summary>Refuses a task that is not the <paramref name="position"/>-th task of the run being created.</summary>
    public static void CheckCreated(RunRecord run, TaskRecord task, int position)
    {
        if (!string.Equals(task.RunId, run.RunId, StringComparison.Ordinal) || task.Index != position)
        {
            throw new ArgumentException($"run {run.RunId}: task {position} was given as task {task.Index} of run {task.RunId}; tasks are numbered 0 to n - 1 in order", nameof(task));
        }
    }

    /// <summary>
    /// Refuses two rows of one attempt and step, and returns each row's step rank: the position
    /// of that step's first row, so that provenance reads back by step in the order recorded.
    /// </summary>
    public static int[] StepRanks(IReadOnlyList<ProvenanceRow> rows)
    {
        var first = new Dictionary<string, int>(StringComparer.Ordinal);
        var seen = new HashSet<(int, string)>();
        var ranks = new int[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            if (!seen.Add((rows[i].Attempt, rows[i].Step)))
            {
                throw new ArgumentException($"two provenance rows of attempt {rows[i].Attempt}, step '{rows[i].Step}'", nameof(rows));
            }

            ranks[i] = first.TryAdd(rows[i].Step, i) ? i : first[rows[i].Step];
        }

        return ranks;
    }
}
