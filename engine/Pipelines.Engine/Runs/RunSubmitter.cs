using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Pipelines.Algorithms;
using Pipelines.Canary;
using Pipelines.Containers;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Queue;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Telemetry;
using Pipelines.Tenancy;

namespace Pipelines.Runs;

/// <summary>A whole plan (group_by, a sample sheet, a given listing), not yet recorded or queued.</summary>
internal sealed record PreparedRun(Workflow Workflow, IReadOnlyDictionary<string, string> ImageDigests, Plan Plan, InputScope Scope);

/// <summary>A plan to look at or to queue: its tasks come as they are planned; the counter fills as they do.</summary>
public sealed record PlanPreview(Workflow Workflow, IReadOnlyDictionary<string, string> ImageDigests, IAsyncEnumerable<PlannedTask> Tasks, PlanCounter Counter, int FilesUngrouped, InputScope Scope);

/// <summary>A run that was accepted and queued, with every warning its submission has for the user.</summary>
public sealed record SubmittedRun(string RunId, string WorkflowName, int Tasks, int Inputs, string OutputUri, IReadOnlyList<SubmitWarning> Warnings)
{
    /// <summary>The run of a batch canary's candidate, when one was asked for; null otherwise.</summary>
    public string? CanaryRunId { get; init; }

    /// <summary>How many tasks the canary's candidate runs again.</summary>
    public int CanaryTasks { get; init; }
}

/// <summary>
/// Turns a workflow file into a queued run: validate, pin images to digests, list the input,
/// plan, record the run and its tasks with workflow.yaml written last, enqueue one job per task.
/// Everything that can be refused is refused before anything is kept: a run is recorded,
/// written and queued whole or not at all (docs/reliability.md, "Submission").
/// </summary>
public sealed partial class RunSubmitter
{
    private readonly IRunStore store;
    private readonly ITaskQueue queue;
    private readonly IContainerRuntime runtime;
    private readonly ObjectStoreFactory stores;
    private readonly LocalRoots localRoots;
    private readonly TenantOptions tenants;
    private readonly TimeProvider time;
    private readonly ILogger<RunSubmitter> log;
    private readonly ILocalWorkers localWorkers;
    private readonly AlgorithmService? algorithms;

    // Internal: only the engine's wiring (a factory, since DI takes public constructors only) and the tests build it, so its parts stay internal.
    internal RunSubmitter(
        IRunStore store,
        ITaskQueue queue,
        IContainerRuntime runtime,
        ObjectStoreFactory stores,
        LocalRoots localRoots,
        TenantOptions tenants,
        TimeProvider time,
        ILogger<RunSubmitter> log,
        ILocalWorkers localWorkers,
        AlgorithmService? algorithms = null)
    {
        this.store = store;
        this.queue = queue;
        this.runtime = runtime;
        this.stores = stores;
        this.localRoots = localRoots;
        this.tenants = tenants;
        this.time = time;
        this.log = log;
        this.localWorkers = localWorkers;
        this.algorithms = algorithms;
    }

    /// <summary>Parses a workflow and refuses, before anything is listed or kept, what its owner may not ask for (<see cref="CheckOwner"/>).</summary>
    private Workflow Parse(string yaml, string source, string? baseDirectory, IReadOnlyList<string> overrides, RunOwner owner)
    {
        var workflow = localRoots.Parse(yaml, source, baseDirectory, overrides);
        CheckOwner(workflow, owner);
        return workflow;
    }

    /// <summary>A location outside the owner's (TenantLocations), a step over the owner's resource quotas (ResourceCeiling).</summary>
    private void CheckOwner(Workflow workflow, RunOwner owner)
    {
        TenantLocations.Check(workflow, owner.Tenant, tenants);
        ResourceCeiling.Check(workflow, owner.Tenant, tenants);
    }

    /// <summary>Everything up to queuing for a plan made whole: validate, pin images, list, plan. Writes nothing.</summary>
    private async Task<PreparedRun> PrepareAsync(Workflow workflow, RunOwner owner, CancellationToken cancellationToken)
    {
        var digests = await ResolveImagesAsync(workflow, owner, cancellationToken).ConfigureAwait(false);

        var input = stores.Open(workflow.Input.Uri);
        var scope = OpenScope(workflow, input);
        var listing = await ListInputAsync(input, scope, cancellationToken).ConfigureAwait(false);
        string? sheet = null;
        if (workflow.Input.Samplesheet is not null)
        {
            sheet = await ReadSamplesheetAsync(workflow.Input.Samplesheet, cancellationToken).ConfigureAwait(false);
        }

        workflow = await SizedAsync(workflow, listing, sheet, digests, cancellationToken).ConfigureAwait(false);

        return new PreparedRun(workflow, digests, PlanOrRefuse(workflow, digests, listing, sheet, input.Uri, scope), scope);
    }

    /// <summary>Validates, plans and queues a run over the workflow's input.</summary>
    /// <remarks>
    /// With <paramref name="canary"/>, a sample of the tasks is run a second time with the
    /// candidate's image for its step, as a run of its own in canary/ (docs/algorithms.md, "Canary for batch runs").
    /// <paramref name="ready"/>, when given, is awaited once the plan is previewed (the file
    /// parsed, the images pinned) and before anything is recorded, queued or started ahead: the
    /// embedded CLI's host start, made side by side with that first part (docs/benchmarks.md, "A run's fixed cost").
    /// </remarks>
    public async Task<SubmittedRun> SubmitAsync(string yaml, string source, string? baseDirectory, IReadOnlyList<string> overrides, CancellationToken cancellationToken, CanaryRequest? canary = null, RunOwner? owner = null, Task? ready = null)
    {
        // The run's trace starts here; its tasks and gather join it (RunDefinition.TraceParent).
        using var span = EngineTracing.Start(EngineTracing.Submit, ActivityKind.Producer);
        try
        {
            // The plan streams or is whole as PreviewAsync decides; from here on there is one path.
            PlanPreview plan;
            using (EngineTracing.Start(EngineTracing.Plan))
            {
                plan = await PreviewAsync(yaml, source, baseDirectory, overrides, cancellationToken, owner).ConfigureAwait(false);
            }

            if (ready is not null)
            {
                await ready.ConfigureAwait(false);
            }

            return await QueueAsync(yaml, plan, NewRunId(time.GetUtcNow()), canary, owner ?? RunOwner.Operator, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            span.Failed(PipelinesException.Describe(e));
            throw;
        }
    }

    /// <summary>
    /// The plan as it streams, without holding the listing: what can be planned a batch at a
    /// time (no group_by, no sample sheet) is; the rest is planned whole. Writes nothing. The
    /// workflow's locations must be <paramref name="owner"/>'s, and its images are pinned as its
    /// (the operator's when none is given).
    /// </summary>
    public async Task<PlanPreview> PreviewAsync(string yaml, string source, string? baseDirectory, IReadOnlyList<string> overrides, CancellationToken cancellationToken, RunOwner? owner = null)
    {
        owner ??= RunOwner.Operator;
        var workflow = Parse(yaml, source, baseDirectory, overrides, owner);
        if (!Planner.CanStream(workflow))
        {
            return Whole(await PrepareAsync(workflow, owner, cancellationToken).ConfigureAwait(false));
        }

        var digests = await ResolveImagesAsync(workflow, owner, cancellationToken).ConfigureAwait(false);
        var counter = new PlanCounter();
        var input = stores.Open(workflow.Input.Uri);
        var scope = OpenScope(workflow, input);
        if (workflow.Input.BatchAuto)
        {
            // A first pass counts what the plan will hold (names and sizes only, nothing hashed
            // or kept), so that the streamed plan can cut tasks of the right size.
            var filter = new GlobFilter(workflow.Input.Include, workflow.Input.Exclude);
            var (units, bytes) = (0L, 0L);
            await foreach (var o in input.Store.ListAsync(input.Prefix, cancellationToken).ConfigureAwait(false))
            {
                var key = o.Key[input.Prefix.Length..];
                if (scope.Admit(key) && filter.IsMatch(key))
                {
                    (units, bytes) = (units + 1, bytes + o.Size);
                }
            }

            workflow = await SizedAsync(workflow, units, bytes, cancellationToken).ConfigureAwait(false);
        }

        return new PlanPreview(workflow, digests, Planner.PlanStreamAsync(workflow, ListInputStreamAsync(input, scope, cancellationToken), digests, counter, cancellationToken), counter, 0, scope);
    }

    private static PlanPreview Whole(PreparedRun prepared)
    {
        var plan = prepared.Plan;
        var counted = new PlanCounter { Listed = plan.FilesListed, Selected = plan.FilesSelected, Tasks = plan.Tasks.Count };
        return new PlanPreview(prepared.Workflow, prepared.ImageDigests, AsAsync(plan.Tasks), counted, plan.FilesUngrouped, prepared.Scope);
    }

    /// <summary>
    /// Records and queues a planned run, streamed or whole: the tasks are copied into the run
    /// store as they are planned, so a million inputs never sit in memory at once
    /// (docs/benchmarks.md), and the run is committed only after its last task and workflow.yaml.
    /// </summary>
    private async Task<SubmittedRun> QueueAsync(string yaml, PlanPreview plan, string runId, CanaryRequest? canary, RunOwner owner, CancellationToken cancellationToken)
    {
        var workflow = plan.Workflow;
        using var scope = LogScopes.Run(log, runId);
        Activity.Current?.SetTag("pipelines.run.id", runId).SetTag("pipelines.workflow", workflow.Name);
        var definition = new RunDefinition(workflow, plan.ImageDigests) { TraceParent = EngineTracing.CurrentParent() };
        CanaryPlan? canaryPlan = null;
        if (canary is not null)
        {
            // Refused before anything is kept: a step the workflow lacks, an image that does not resolve.
            canaryPlan = await CanaryPlan.PrepareAsync(canary, definition, runId, (image, ct) => AlgorithmService.PinAsync(algorithms, runtime, image, owner.Tenant, ct), cancellationToken).ConfigureAwait(false);
            definition = definition with { Canary = canaryPlan.CurrentLink };
        }

        var runOutput = definition.Folder(stores, runId);
        var run = new RunRecord(runId, workflow.Name, yaml, definition.ToJson(), runOutput.Uri, RunState.Running, 0, 0, time.GetUtcNow(), null, null, null)
        {
            Tenant = owner.Tenant,
            SubmittedBy = owner.SubmittedBy,
        };
        var tasks = RecordsThenWorkflowYaml(canaryPlan is null ? plan.Tasks : canaryPlan.Observe(plan.Tasks, cancellationToken), runId, runOutput, yaml, workflow.Output.Uri, cancellationToken);
        // The worker side may start the first step's warm containers while the input is planned.
        var prewarm = localWorkers.StartAheadAsync(runId, owner.Tenant, workflow, plan.ImageDigests, cancellationToken);
        var count = 0;
        try
        {
            // A streamed plan is made here, as its tasks are recorded.
            using var recording = EngineTracing.Start(EngineTracing.Record);
            count = await store.CreateRunAsync(run, tasks, cancellationToken).ConfigureAwait(false);
            recording?.SetTag("pipelines.run.tasks", count);
        }
        finally
        {
            await prewarm.ConfigureAwait(false);
            if (count == 0)
            {
                // A refused run's prewarmed containers have no task to serve.
                await localWorkers.RetireAsync(runId, $"run {runId} was not submitted").ConfigureAwait(false);
            }
        }

        if (count == 0)
        {
            // Only a streamed plan gets here (a whole one is refused when it is made); nothing was kept.
            throw new PipelinesException(
                $"input matched no files: {plan.Counter.Listed} object(s) under {workflow.Input.Uri}{LeftOutClause(plan.Scope)}, none selected by include {string.Join(", ", workflow.Input.Include)}",
                retryHelps: false);
        }

        // The candidate's run is made before either run's tasks are queued, so that the current
        // run cannot end (and ask for the candidate's gather) before the candidate exists.
        var canaryTasks = 0;
        if (canaryPlan is not null)
        {
            canaryTasks = await canaryPlan.CreateCandidateAsync(store, stores, yaml, count, time.GetUtcNow(), owner, cancellationToken).ConfigureAwait(false);
        }

        using (EngineTracing.Start(EngineTracing.Enqueue))
        {
            await queue.EnqueueTasksAsync(runId, Enumerable.Range(0, count).ToList(), cancellationToken).ConfigureAwait(false);
            if (canaryPlan is not null)
            {
                await queue.EnqueueTasksAsync(canaryPlan.CurrentLink.CandidateRunId, Enumerable.Range(0, canaryTasks).ToList(), cancellationToken).ConfigureAwait(false);
            }
        }

        EngineMetrics.RunSubmitted();
        LogSubmitted(log, runId, workflow.Name, count, plan.Counter.Selected);
        return new SubmittedRun(runId, workflow.Name, count, plan.Counter.Selected, runOutput.Uri, SubmitWarning.Of(workflow, count, plan.FilesUngrouped, plan.Scope))
        {
            CanaryRunId = canaryPlan?.CurrentLink.CandidateRunId,
            CanaryTasks = canaryTasks,
        };
    }

    /// <summary>
    /// The tasks as run-store records, then, once the last one is planned, the run's first write to
    /// its output location (workflow.yaml). The run store commits a run only when this stream ends
    /// (a stream that throws creates nothing, IRunStore.CreateRunAsync), so an output location
    /// that cannot be written, like an input that cannot be planned, leaves no run anywhere: not
    /// in the run store, not in Hangfire, not in the output location.
    /// </summary>
    private static async IAsyncEnumerable<TaskRecord> RecordsThenWorkflowYaml(
        IAsyncEnumerable<PlannedTask> tasks, string runId, StorageLocation runOutput, string yaml, string outputUri, [EnumeratorCancellation] CancellationToken ct)
    {
        var any = false;
        await foreach (var t in tasks.WithCancellation(ct).ConfigureAwait(false))
        {
            any = true;
            yield return new TaskRecord(runId, t.Index, t.TaskId, TaskState.Queued, t.Inputs, t.Captures, 0, null, null, null, null, null);
        }

        if (!any)
        {
            // No task: the caller refuses the run, and nothing is written.
            yield break;
        }

        try
        {
            await runOutput.Store.PutAsync(runOutput.Key(RunLayout.WorkflowYaml), Encoding.UTF8.GetBytes(yaml), "application/yaml", ct).ConfigureAwait(false);
        }
        catch (PipelinesException e)
        {
            // An unreachable store stays an outage (RetryHelps), a missing bucket or a read-only folder a refusal.
            throw new PipelinesException($"output.uri {outputUri} cannot be written: {e.Message}", e.RetryHelps, e);
        }
    }

    private static async IAsyncEnumerable<PlannedTask> AsAsync(IReadOnlyList<PlannedTask> tasks)
    {
        foreach (var t in tasks)
        {
            yield return t;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <summary>
    /// Submits a run over an explicit listing (keys relative to <c>workflow.Input.Uri</c>, with
    /// size and ETag) instead of listing the input: a trigger's new objects. The run id is the
    /// caller's, so that the caller can record it before the run exists, and a second call after
    /// a crash names the same run rather than a new one (<see cref="IRunStore.CreateRunAsync(RunRecord, IAsyncEnumerable{TaskRecord}, CancellationToken)"/>
    /// refuses a run id that exists).
    /// </summary>
    public async Task<SubmittedRun> SubmitListingAsync(string yaml, Workflow workflow, IReadOnlyList<InputFile> listing, string runId, CancellationToken cancellationToken, RunOwner? owner = null)
    {
        if (workflow.Input.Samplesheet is not null)
        {
            throw new PipelinesException($"{workflow.Name}: a run over a given listing cannot use input.samplesheet", retryHelps: false);
        }

        // Checked at registration too; again here, for a trigger registered before its tenant's folders or quotas changed.
        CheckOwner(workflow, owner ?? RunOwner.Operator);

        using var span = EngineTracing.Start(EngineTracing.Submit, ActivityKind.Producer);
        var digests = await ResolveImagesAsync(workflow, owner ?? RunOwner.Operator, cancellationToken).ConfigureAwait(false);
        var scope = OpenScope(workflow, stores.Open(workflow.Input.Uri));
        var admitted = listing.Where(f => scope.Admit(f.Key)).ToList();
        workflow = await SizedAsync(workflow, admitted, null, digests, cancellationToken).ConfigureAwait(false);

        var plan = PlanOrRefuse(workflow, digests, admitted, null, workflow.Input.Uri, scope);
        return await QueueAsync(yaml, Whole(new PreparedRun(workflow, digests, plan, scope)), runId, canary: null, owner ?? RunOwner.Operator, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// input.batch: auto made a number (Planning/AutoBatch) from the live workers' slots (this
    /// process's own when none has been seen yet) and the units to plan; the run's definition
    /// records the number chosen.
    /// </summary>
    private async Task<Workflow> SizedAsync(Workflow workflow, IReadOnlyList<InputFile> listing, string? sheet, IReadOnlyDictionary<string, string> digests, CancellationToken ct)
    {
        if (!workflow.Input.BatchAuto)
        {
            return workflow;
        }

        // A plan made whole: its units are the tasks of the same plan at batch 1.
        var units = Planner.Plan(workflow with { Input = workflow.Input with { Batch = 1 } }, listing, sheet, digests).Tasks;
        return await SizedAsync(workflow, units.Count, units.Sum(u => u.Inputs.Sum(i => i.Size)), ct).ConfigureAwait(false);
    }

    private async Task<Workflow> SizedAsync(Workflow workflow, long units, long bytes, CancellationToken ct)
    {
        var slots = await queue.WorkerSlotsAsync(ct).ConfigureAwait(false);
        if (slots <= 0)
        {
            slots = localWorkers.Slots;
        }

        var (batch, why) = AutoBatch.Size(units, bytes, slots, perUnit: null);
        LogAutoBatch(log, workflow.Name, batch, why);
        return workflow with { Input = workflow.Input with { Batch = batch } };
    }

    /// <summary>Each step's image pinned for the run's tenant: its algorithms, and no image only other tenants pushed (docs/tenants.md, "Images").</summary>
    private async Task<Dictionary<string, string>> ResolveImagesAsync(Workflow workflow, RunOwner owner, CancellationToken ct)
    {
        var digests = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var image in workflow.Steps.Select(s => s.Image).Distinct())
        {
            digests[image] = await AlgorithmService.PinAsync(algorithms, runtime, image, owner.Tenant, ct).ConfigureAwait(false);
        }

        return digests;
    }

    private static Plan PlanOrRefuse(Workflow workflow, IReadOnlyDictionary<string, string> digests, IReadOnlyList<InputFile> listing, string? sheet, string inputUri, InputScope scope)
    {
        var plan = Planner.Plan(workflow, listing, sheet, digests);
        if (plan.Tasks.Count == 0)
        {
            throw new PipelinesException(
                $"input matched no files: {listing.Count} object(s) under {inputUri}{LeftOutClause(scope)}, none selected by include {string.Join(", ", workflow.Input.Include)}"
                + (plan.FilesUngrouped > 0 ? $" and group_by (it matched none of {plan.FilesUngrouped})" : ""),
                retryHelps: false);
        }

        return plan;
    }

    /// <summary>
    /// The input's scope against the output location, which is checked here too: an output.uri
    /// that names a file or a device is refused before anything is listed (plan and run alike).
    /// </summary>
    private InputScope OpenScope(Workflow workflow, StorageLocation input)
    {
        var output = stores.Open(workflow.Output.Uri);
        if (output.Store.RootBlocker() is { } blocker)
        {
            throw new PipelinesException($"output.uri {workflow.Output.Uri} cannot be a folder: {blocker}", retryHelps: false);
        }

        return new InputScope(input, output);
    }

    private static string LeftOutClause(InputScope scope) =>
        scope.LeftOut == 0 ? "" : $" (and {scope.LeftOut} under the output location, left out)";

    /// <summary>Lists the input whole (group_by and sample sheets need all of it).</summary>
    private static async Task<List<InputFile>> ListInputAsync(StorageLocation input, InputScope scope, CancellationToken ct)
    {
        var files = new List<InputFile>();
        await foreach (var f in ListInputStreamAsync(input, scope, ct).ConfigureAwait(false))
        {
            files.Add(f);
        }

        return files;
    }

    /// <summary>
    /// Lists the input in key order; objects without a content tag (local files) are hashed with
    /// sha256, a chunk at a time in parallel, so that only one chunk is held.
    /// </summary>
    private static async IAsyncEnumerable<InputFile> ListInputStreamAsync(StorageLocation input, InputScope scope, [EnumeratorCancellation] CancellationToken ct)
    {
        const int Chunk = 512;
        var chunk = new List<StoredObject>(Chunk);
        await foreach (var o in input.Store.ListAsync(input.Prefix, ct).ConfigureAwait(false))
        {
            // The one place a run's listing is scoped: the engine's own outputs are left out, and
            // keys it cannot carry are refused, the same for folders and buckets.
            if (!scope.Admit(o.Key[input.Prefix.Length..]))
            {
                continue;
            }

            chunk.Add(o);
            if (chunk.Count == Chunk)
            {
                foreach (var f in await TagAsync(input, chunk, ct).ConfigureAwait(false))
                {
                    yield return f;
                }

                chunk.Clear();
            }
        }

        foreach (var f in await TagAsync(input, chunk, ct).ConfigureAwait(false))
        {
            yield return f;
        }
    }

    private static async Task<InputFile[]> TagAsync(StorageLocation input, List<StoredObject> objects, CancellationToken ct)
    {
        var files = new InputFile[objects.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, objects.Count), new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (i, token) =>
        {
            var o = objects[i];
            files[i] = new InputFile(o.Key[input.Prefix.Length..], o.Size, await input.Store.ContentTagAsync(o, token).ConfigureAwait(false));
        }).ConfigureAwait(false);
        return files;
    }

    private async Task<string> ReadSamplesheetAsync(string uri, CancellationToken ct)
    {
        var slash = uri.LastIndexOf('/');
        var folder = stores.Open(uri[..(slash + 1)]);
        var name = uri[(slash + 1)..];
        try
        {
            return Encoding.UTF8.GetString(await folder.Store.ReadAllAsync(folder.Key(name), ct).ConfigureAwait(false));
        }
        catch (ObjectNotFoundException)
        {
            throw new WorkflowInvalidException("the workflow", [new WorkflowProblem("input.samplesheet", $"'{uri}' does not exist", 0, 0)]);
        }
    }

    /// <summary>Sortable and readable: 20261126-053012-7f3a9c.</summary>
    internal static string NewRunId(DateTimeOffset now) =>
        now.UtcDateTime.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture) + "-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));

    [LoggerMessage(Level = LogLevel.Information, Message = "{Workflow}: input.batch auto is {Batch}: {Why}")]
    private static partial void LogAutoBatch(ILogger logger, string workflow, int batch, string why);

    [LoggerMessage(Level = LogLevel.Information, Message = "run {RunId} of {Workflow} queued: {Tasks} tasks over {Files} files")]
    private static partial void LogSubmitted(ILogger logger, string runId, string workflow, int tasks, int files);
}
