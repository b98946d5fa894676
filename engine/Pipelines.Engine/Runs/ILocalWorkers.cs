using Pipelines.Model;
using Pipelines.Tenancy;

namespace Pipelines.Runs;

/// <summary>
/// What the submitter asks of this process's worker side (Worker/WarmSteps): owned here, so that
/// the runs part names no part above it (docs/architecture.md, "Layering").
/// </summary>
internal interface ILocalWorkers
{
    /// <summary>The tasks this process's worker runs at once (Worker:Concurrency): the auto batch's slots when no live worker has said its own.</summary>
    int Slots { get; }

    /// <summary>Starts the warm containers of the run's first step ahead of its tasks (with the secrets of the run's <paramref name="tenant"/>), where that helps; never fails the submission.</summary>
    Task StartAheadAsync(string runId, TenantId tenant, Workflow workflow, IReadOnlyDictionary<string, string> digests, CancellationToken ct);

    /// <summary>Stops the warm containers of every step of a run: one that was not submitted after all.</summary>
    Task RetireAsync(string runId, string reason);
}
