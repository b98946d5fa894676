using System.Runtime.CompilerServices;
using Pipelines.Canary;
using Pipelines.Containers;
using Pipelines.Planning;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tenancy;

namespace Pipelines.Runs;

/// <summary>
/// A canary being submitted with its run: the candidate's image pinned to a digest, the sample
/// taken while the run's plan streams past, then the candidate's run of the sample recorded
/// (its definition says which current task each of its tasks repeats).
/// </summary>
internal sealed class CanaryPlan
{
    private readonly CanaryRequest _request;
    private readonly RunDefinition _current;
    private readonly string _candidateDigest;
    private readonly CanarySampler _sampler;

    private CanaryPlan(CanaryRequest request, RunDefinition current, string candidateDigest, CanaryLink link)
    {
        (_request, _current, _candidateDigest, CurrentLink) = (request, current, candidateDigest, link);
        _sampler = new CanarySampler(current.Workflow.Name, request.Sample);
    }

    /// <summary>The link the current run's definition keeps.</summary>
    public CanaryLink CurrentLink { get; }

    /// <summary>The canary's plan, its candidate image pinned by <paramref name="pin"/> (as the run's tenant pins its images).</summary>
    public static async Task<CanaryPlan> PrepareAsync(CanaryRequest request, RunDefinition current, string runId, Func<string, CancellationToken, Task<string>> pin, CancellationToken ct)
    {
        var step = request.StepOf(current.Workflow);
        string digest;
        try
        {
            digest = await pin(request.Image, ct).ConfigureAwait(false);
        }
        catch (PipelinesException e) when (!e.RetryHelps)
        {
            throw new CanaryRequestException($"--candidate {request.Step}={request.Image}: {e.Message}");
        }

        var link = new CanaryLink(CanaryRole.Current, runId, CanaryLink.CandidateRunIdOf(runId), request.Step, step.Image, request.Image, request.Sample.ToString(), request.Tolerance);
        return new CanaryPlan(request, current, digest, link);
    }

    /// <summary>The plan's tasks passed on unchanged, each seen by the sampler on the way.</summary>
    public async IAsyncEnumerable<PlannedTask> Observe(IAsyncEnumerable<PlannedTask> tasks, [EnumeratorCancellation] CancellationToken ct)
    {
        await foreach (var t in tasks.WithCancellation(ct).ConfigureAwait(false))
        {
            _sampler.Observe(t);
            yield return t;
        }
    }

    /// <summary>Records the candidate's run of the sample (after the current run's plan has streamed) and returns its task count.</summary>
    public async Task<int> CreateCandidateAsync(IRunStore store, ObjectStoreFactory stores, string yaml, int tasksInRun, DateTimeOffset now, RunOwner owner, CancellationToken ct)
    {
        var sampled = _sampler.Sampled();
        var workflow = _request.Apply(_current.Workflow);
        var digests = new Dictionary<string, string>(_current.ImageDigests, StringComparer.Ordinal) { [_request.Image] = _candidateDigest };
        var link = CurrentLink with { Role = CanaryRole.Candidate, Sampled = sampled.Select(t => t.Index).ToList(), TasksInRun = tasksInRun };
        var definition = new RunDefinition(workflow, digests) { Canary = link };
        var runId = link.CandidateRunId;
        var folder = definition.Folder(stores, runId);
        // The candidate's run is the current run's owner's, as its usage and its visibility are.
        var run = new RunRecord(runId, workflow.Name, yaml, definition.ToJson(), folder.Uri, RunState.Running, 0, 0, now, null, null, null)
        {
            Tenant = owner.Tenant,
            SubmittedBy = owner.SubmittedBy,
        };

        // Another image gives other task ids, so its tasks never meet the current image's in any cache;
        // an identical image gives the same ids, and the candidate still runs (it reads no cache, TaskRunner).
        var tasks = sampled.Select((t, i) => new TaskRecord(runId, i, Planner.TaskId(workflow, digests, t.Inputs, t.Captures), TaskState.Queued, t.Inputs, t.Captures, 0, null, null, null, null, null)).ToList();
        await store.CreateRunAsync(run, tasks, ct).ConfigureAwait(false);
        return tasks.Count;
    }
}
