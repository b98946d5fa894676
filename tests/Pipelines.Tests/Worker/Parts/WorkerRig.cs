using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Containers;
using Pipelines.Hosting;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Queue;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.Support;
using Pipelines.Worker;

namespace Pipelines.Tests.Worker.Parts;

/// <summary>
/// The worker's parts wired as the engine wires them (AddPipelinesEngine), with the run store
/// in memory, the object store in memory (mem://), the queue recording what it is given and
/// every container seam scripted (<see cref="ScriptedRuntime"/>): each step's container is a C#
/// function given the spec and the host folder bound at /out, and no Docker engine is asked
/// anything. A delivery is a direct call of the task shell.
/// </summary>
internal sealed class WorkerRig : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly ServiceProvider _services;

    public WorkerRig(ScriptedRuntime.Script script, IDictionary<string, string?>? settings = null, Action<IServiceCollection>? more = null)
    {
        Runtime = new ScriptedRuntime(script);
        var values = new Dictionary<string, string?>
        {
            ["Worker:Scratch"] = _temp.Combine("scratch"),
            ["Worker:QuotaPollInterval"] = "00:00:00.050",
            ["Worker:CancelPollInterval"] = "00:00:00.050",
            ["Worker:OutageWait"] = "00:00:00",
        };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>())
        {
            values[k] = v;
        }

        var config = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddPipelinesEngine(config, worker: false);
        services.AddSingleton<IRunStore>(Runs);
        services.AddSingleton<ITaskQueue>(Queue);
        services.AddSingleton<IContainerRuntime>(Runtime);
        services.AddSingleton<IContainerImages>(Runtime);
        services.AddSingleton<ILongLivedContainers>(Runtime);
        services.AddSingleton<IContainerSuspender>(Runtime);
        services.AddSingleton<IContainerSweep>(Runtime);
        services.AddSingleton<IEngineLiveness>(Runtime);
        services.AddSingleton(new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1")).Serve("mem", Objects));
        more?.Invoke(services);
        _services = services.BuildServiceProvider();
        Runner = _services.GetRequiredService<TaskRunner>();
        Scratch = values["Worker:Scratch"]!;
    }

    public MemoryObjectStore Objects { get; } = new();

    public InMemoryRunStore Runs { get; } = new();

    public RecordingQueue Queue { get; } = new();

    public ScriptedRuntime Runtime { get; }

    public TaskRunner Runner { get; }

    public string Scratch { get; }

    /// <summary>
    /// A run of a one-step workflow (<paramref name="steps"/> is its steps: section) over the
    /// given input files (under mem://in/), planned and recorded as the submitter records it;
    /// <paramref name="input"/> adds lines to the input section (group_by); <paramref name="digest"/>
    /// pins every image to that digest instead of one made from the image's name.
    /// </summary>
    public async Task<RunRecord> SubmitAsync(string steps, IReadOnlyList<(string Key, string Content)> files, int batch = 1, string onError = "continue", string runId = "run-1", string input = "", string? digest = null)
    {
        foreach (var (key, content) in files)
        {
            Objects.Set("in/" + key, Encoding.UTF8.GetBytes(content));
        }

        var yaml = $"""
            version: 1
            name: parts
            input:
              uri: s3://unit/in/
              include: ["*.txt"]
              batch: {batch}
              {input}
            steps:
            {steps}
            output:
              uri: s3://unit/out/
            on_error: {onError}
            """;
        var parsed = WorkflowParser.Parse(yaml, "parts.yaml", null);
        var workflow = parsed with { Input = parsed.Input with { Uri = "mem://in/" }, Output = new OutputSpec("mem://out/") };
        var digests = workflow.Steps.Select(s => s.Image).Distinct().ToDictionary(i => i, i => digest ?? "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(i))));
        foreach (var (image, id) in digests)
        {
            Runtime.AddImage(image, id);
        }

        var listing = new List<InputFile>();
        await foreach (var o in Objects.ListAsync("in/", CancellationToken.None))
        {
            listing.Add(new InputFile(o.Key["in/".Length..], o.Size, o.ETag!));
        }

        var plan = Planner.Plan(workflow, listing, null, digests);
        var run = new RunRecord(runId, workflow.Name, yaml, new RunDefinition(workflow, digests).ToJson(), "mem://out/" + runId + "/", RunState.Running, plan.Tasks.Count, plan.Tasks.Count, DateTimeOffset.UtcNow, null, null, null);
        await Runs.CreateRunAsync(run, plan.Tasks.Select(t => new TaskRecord(runId, t.Index, t.TaskId, TaskState.Queued, t.Inputs, t.Captures, 0, null, null, null, null, null)).ToAsyncEnumerable(), CancellationToken.None);
        return run;
    }

    /// <summary>Delivers task <paramref name="index"/> of the run once, as Hangfire would.</summary>
    public Task DeliverAsync(string runId, int index, CancellationToken ct = default) => Runner.RunAsync(runId, [index], ct);

    /// <summary>Delivers each task of the run once, then each task the shell queued (a split's children), as Hangfire would.</summary>
    public async Task DeliverAllAsync(string runId)
    {
        var planned = (await Runs.GetTasksAsync(runId, CancellationToken.None)).Count;
        for (var i = 0; i < planned; i++)
        {
            await DeliverAsync(runId, i);
        }

        while (Queue.Tasks.TryDequeue(out var queued))
        {
            await DeliverAsync(queued.RunId, queued.Index);
        }
    }

    public async Task<TaskRecord> TaskAsync(string runId, int index) =>
        (await Runs.GetTaskAsync(runId, index, CancellationToken.None))!;

    public async Task<IReadOnlyList<ProvenanceRow>> RowsAsync(string runId) =>
        await Runs.GetProvenanceAsync(runId, CancellationToken.None);

    public string Text(string key) => Encoding.UTF8.GetString(Objects.Get(key));

    public void Dispose()
    {
        // The host's warm pool disposes only asynchronously, as a host does.
        _services.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _temp.Dispose();
    }
}

/// <summary>The queue's seam, recording the jobs it is given (the shell's fan-out and fan-in).</summary>
internal sealed class RecordingQueue : ITaskQueue
{
    public ConcurrentQueue<(string RunId, int Index)> Tasks { get; } = new();

    public ConcurrentQueue<string> Gathers { get; } = new();

    public int Slots { get; set; } = 4;

    public Task<int> WorkerSlotsAsync(CancellationToken cancellationToken) => Task.FromResult(Slots);

    public Task EnqueueTasksAsync(string runId, IReadOnlyList<int> taskIndexes, CancellationToken cancellationToken)
    {
        // As HangfireTaskQueue does: a cancelled enqueue enqueues nothing.
        cancellationToken.ThrowIfCancellationRequested();
        foreach (var i in taskIndexes)
        {
            Tasks.Enqueue((runId, i));
        }

        return Task.CompletedTask;
    }

    public Task EnqueueGatherAsync(string runId, CancellationToken cancellationToken)
    {
        Gathers.Enqueue(runId);
        return Task.CompletedTask;
    }
}
