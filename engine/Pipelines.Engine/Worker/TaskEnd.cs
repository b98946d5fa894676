using Pipelines.RunStore;
using Pipelines.Usage;

namespace Pipelines.Worker;

/// <summary>
/// How one delivery of a task ends, as the parts of the worker decide it; the task shell
/// (<see cref="TaskRunner"/>) alone writes it to the run store and acts on it.
/// </summary>
internal abstract record TaskEnd
{
    private TaskEnd()
    {
    }

    /// <summary>
    /// The task's attempts that earlier deliveries ran and the harvester vacated, read by this
    /// delivery (its own attempts are numbered after them): committed with its rows, then
    /// removed. Null when this delivery did not look (it ran nothing): the shell looks then.
    /// </summary>
    public VacatedAttempts? Earlier { get; init; }

    /// <summary>What this delivery used (its own attempts only), for the usage ledger; null when it ran nothing.</summary>
    public UsageRecord? Usage { get; init; }

    /// <summary>The task ends with this outcome and these provenance rows.</summary>
    public sealed record Settled(TaskOutcome Outcome, IReadOnlyList<ProvenanceRow> Rows) : TaskEnd;

    /// <summary>A failed batch ends split, and each child runs as a task of its own.</summary>
    public sealed record Split(TaskOutcome Outcome, IReadOnlyList<ProvenanceRow> Rows, IReadOnlyList<TaskRecord> Children) : TaskEnd;

    /// <summary>
    /// The harvester vacated the task: it goes back to the queue for another machine, and its
    /// rows (the vacated attempt) are kept for the delivery that ends it (not a failure).
    /// </summary>
    public sealed record Vacated(IReadOnlyList<ProvenanceRow> Rows, VacatedAttempts.StepLog? Log) : TaskEnd;

    /// <summary>Nothing to write: the task had ended already, or is another delivery's to end.</summary>
    public sealed record Nothing : TaskEnd;
}
