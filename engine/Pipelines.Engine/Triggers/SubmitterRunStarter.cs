using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Queue;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Tenancy;

namespace Pipelines.Triggers;

/// <summary>Starts a batch's run through <see cref="RunSubmitter.SubmitListingAsync"/>: input.uri becomes trigger.uri.</summary>
internal sealed class SubmitterRunStarter(RunSubmitter submitter, IRunStore runs, ITaskQueue queue) : ITriggerRunStarter
{
    public async Task StartAsync(RegisteredTrigger trigger, TriggerBatch batch, CancellationToken cancellationToken)
    {
        if (await runs.GetRunAsync(batch.RunId, cancellationToken).ConfigureAwait(false) is not null)
        {
            // The run was created, and the process stopped before the batch was marked started.
            // Its tasks may or may not have been enqueued: enqueue those still queued. A task job
            // delivered twice is harmless (the task is claimed and committed once, architecture.md).
            await EnqueueQueuedAsync(batch.RunId, cancellationToken).ConfigureAwait(false);
            return;
        }

        var workflow = ForTrigger(trigger);
        var listing = batch.Objects.Select(o => new InputFile(o.Key[trigger.Prefix.Length..], o.Size, o.ETag)).ToList();
        try
        {
            // The run is the trigger's tenant's, and says which trigger submitted it.
            await submitter.SubmitListingAsync(trigger.Yaml, workflow, listing, batch.RunId, cancellationToken, new RunOwner(trigger.Tenant, "trigger " + trigger.Name)).ConfigureAwait(false);
        }
        catch (DuplicateRunException)
        {
            // Another trigger process created this run id between our check and our insert (only
            // possible when it resumed this batch after losing its lock connection): the run
            // exists once, and that process queues its tasks.
        }
    }

    /// <summary>The registered workflow as its triggered runs see it: the input is the trigger's uri and globs.</summary>
    public static Workflow ForTrigger(RegisteredTrigger trigger)
    {
        var workflow = WorkflowParser.Parse(trigger.Yaml, trigger.Source, trigger.BaseDirectory, trigger.Overrides);
        return workflow with { Input = workflow.Input with { Uri = trigger.Uri, Include = trigger.Include, Exclude = trigger.Exclude } };
    }

    private async Task EnqueueQueuedAsync(string runId, CancellationToken ct)
    {
        var queued = (await runs.GetTasksAsync(runId, ct).ConfigureAwait(false)).Where(t => t.State == TaskState.Queued).Select(t => t.Index).ToList();
        if (queued.Count > 0)
        {
            await queue.EnqueueTasksAsync(runId, queued, ct).ConfigureAwait(false);
        }
    }
}
