using System.Text.Json;
using System.Text.Json.Serialization;
using Pipelines.Canary;
using Pipelines.Model;
using Pipelines.Storage;

namespace Pipelines.Runs;

/// <summary>What a run needs besides its tasks: the resolved workflow and the image digests it is pinned to.</summary>
public sealed record RunDefinition(Workflow Workflow, IReadOnlyDictionary<string, string> ImageDigests)
{
    /// <summary>The batch canary this run is a side of; null for a run without one.</summary>
    public CanaryLink? Canary { get; init; }

    /// <summary>
    /// The run's trace (a W3C traceparent of its submission's span): every task and the gather
    /// start their spans under it, in whichever process runs them. Null for runs submitted
    /// before traces (their tasks' spans start traces of their own).
    /// </summary>
    public string? TraceParent { get; init; }

    /// <summary>Whether this run is a canary's candidate: its own folder inside the current run's, and no cache.</summary>
    [JsonIgnore]
    public bool IsCandidate => Canary?.Role == CanaryRole.Candidate;

    /// <summary>
    /// The one home of where a run writes: <c>&lt;output.uri&gt;/&lt;run-id&gt;/</c>, or for a
    /// canary's candidate <c>&lt;output.uri&gt;/&lt;current-run-id&gt;/canary/</c>.
    /// </summary>
    public StorageLocation Folder(ObjectStoreFactory stores, string runId) => IsCandidate
        ? stores.Open(Workflow.Output.Uri).Child(Canary!.CurrentRunId).Child(CanaryLink.Folder)
        : stores.Open(Workflow.Output.Uri).Child(runId);

    public string ToJson() => JsonSerializer.Serialize(this, RunsJson.Default.RunDefinition);

    public static RunDefinition FromJson(string json) =>
        JsonSerializer.Deserialize(json, RunsJson.Default.RunDefinition) ?? throw new InvalidOperationException("empty run definition");
}

/// <summary>The keys a run writes under <c>&lt;output.uri&gt;/&lt;run-id&gt;/</c> (docs/workflow-spec.md).</summary>
public static class RunLayout
{
    public const string WorkflowYaml = "workflow.yaml";
    public const string RunJson = "run.json";
    public const string ProvenanceTasks = "provenance/tasks.parquet";
    public const string RoCrate = "provenance/ro-crate-metadata.json";

    /// <summary>The run's report (Gather/RunReport), written with the gather.</summary>
    public const string Report = "report.html";

    /// <summary>Under the output root (beside the runs): one manifest per succeeded task id, for reuse.</summary>
    public const string CachePrefix = ".cache/";

    /// <summary>Under the output root: one small entry per workflow and unit naming its latest succeeded task, for explain.</summary>
    public const string UnitPrefix = CachePrefix + "units/";

    /// <summary>A task's folder in its run's: its steps' outputs and logs, and its vacated attempts' logs.</summary>
    public static string TaskPrefix(string taskId) => $"tasks/{taskId}/";

    public static string TaskOutput(string taskId, string step, string relative) => $"{TaskPrefix(taskId)}{step}/{relative}";

    public static string TaskStepPrefix(string taskId, string step) => $"{TaskPrefix(taskId)}{step}/";

    public static string TaskLog(string taskId, string step) => $"{TaskPrefix(taskId)}{step}.log";

    public static string Result(string name, string extension) => $"results/{name}.{extension}";
}
