using Pipelines.RunStore;

namespace Pipelines.Canary;

/// <summary>
/// Why a sampled task of one side (<c>current</c> or <c>candidate</c>) could not be compared:
/// how it ended, the exit code and error of its last failed attempt, the last lines its
/// container wrote (stdout and stderr, as the step's log holds them), and, for a batch that
/// was split, how the tasks it was split into ended.
/// </summary>
public sealed record CanaryFailure(string Side, string State, long? ExitCode, string? Error, IReadOnlyList<string>? OutputTail, string? Split)
{
    /// <summary>How many of the container's last lines are kept.</summary>
    public const int TailLines = 20;

    /// <summary>One line for the task's verdict: the side, how it ended and why.</summary>
    public string Line() =>
        $"the {Side} task ended {State}" + (Error is null ? "" : ": " + Error) + (Split is null ? "" : $" ({Split})");

    /// <summary>What a task of <paramref name="side"/> that did not end well shows, from its run's tasks and provenance.</summary>
    internal static CanaryFailure Of(string side, TaskRecord task, IReadOnlyList<TaskRecord> tasks, IReadOnlyList<ProvenanceRow> provenance)
    {
        var failed = provenance.LastOrDefault(r => r.TaskIndex == task.Index && r.Status is "failed" or "cancelled");
        var (error, tail) = Parts(failed?.Step, failed?.Error ?? task.Error);
        string? split = null;
        if (task.State == TaskState.Split)
        {
            var children = tasks.Where(t => t.ParentIndex == task.Index).ToList();
            split = $"split into {children.Count} task(s): " + string.Join(", ", children.GroupBy(c => c.State).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key.Name()}"))
                + string.Concat(children.Where(c => c.State == TaskState.Failed).Take(3).Select(c => $"; task {c.Index} {(c.ExitCode is { } x ? $"exit code {x}" : "failed")}"));
        }

        return new CanaryFailure(side, task.State.Name(), failed?.ExitCode ?? task.ExitCode, error, tail, split);
    }

    /// <summary>
    /// A failed attempt's error is "step 'NAME' exited with code N: THE OUTPUT'S LAST LINES"
    /// (timed out and killed for memory alike): the head, and the output's last lines apart.
    /// Any other error (stopped over a quota, refused outputs) is all head.
    /// </summary>
    private static (string? Error, IReadOnlyList<string>? Tail) Parts(string? step, string? error)
    {
        if (error is null || step is null)
        {
            return (error?.Split('\n')[0], null);
        }

        foreach (var how in new[] { "exited with code ", "timed out and was killed", "was killed for exceeding its memory limit" })
        {
            var head = $"step '{step}' {how}";
            if (!error.StartsWith(head, StringComparison.Ordinal))
            {
                continue;
            }

            var cut = error.IndexOf(": ", head.Length, StringComparison.Ordinal);
            if (cut < 0)
            {
                return (error, null);
            }

            var lines = error[(cut + 2)..].TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToList();
            return (error[..cut], lines.Count > TailLines ? lines[^TailLines..] : lines);
        }

        return (error.Split('\n')[0], null);
    }
}
