using Pipelines.Model;
using Pipelines.RunStore;

namespace Pipelines.Server.Api;

/// <summary>
/// A submission: the workflow YAML and optional overrides such as "input.batch=10"; for a batch
/// canary, the candidate (STEP=IMAGE), the sample (5% or a number) and the tolerance, as the CLI's flags.
/// </summary>
public sealed record SubmitRunRequest(
    string Workflow,
    IReadOnlyList<string>? Set,
    [property: System.Text.Json.Serialization.JsonPropertyName("process_existing")] bool ProcessExisting = false,
    string? Candidate = null,
    string? Sample = null,
    double? Tolerance = null);

/// <summary>A run that was accepted and queued (with its canary's candidate run, when one was asked for).</summary>
public sealed record SubmittedRunView(string RunId, string Url, string Workflow, int Tasks, int Inputs, string OutputUri, IReadOnlyList<string> Warnings, string? CanaryRunId = null, string? CanaryUrl = null);

/// <summary>Counts of a run's tasks by state; of the queued ones, those held back, by reason (RunStore/HoldReasons: owner_load, drain, policy).</summary>
public sealed record CountsView(int Total, int Queued, int Running, int Succeeded, int Cached, int Failed, int Cancelled, int Split, int Held = 0, IReadOnlyDictionary<string, int>? HeldBecause = null)
{
    public static CountsView From(TaskCounts c) => new(c.Total, c.Queued, c.Running, c.Succeeded, c.Cached, c.Failed, c.Cancelled, c.Split, c.Held, c.HeldBecause);

    /// <summary>The counts again as the run store gives them.</summary>
    public TaskCounts ToCounts() => new(Queued, Running, Succeeded, Failed, Cached, Cancelled)
    {
        Split = Split,
        HeldBecause = HeldBecause ?? new Dictionary<string, int>(StringComparer.Ordinal),
    };
}

/// <summary>
/// A run: its state, counts and timings, and where to read more; one run's view (GET /api/runs/{id})
/// carries its usage and cost so far (run.json's usage block, from the ledger), a listing's does not.
/// </summary>
public sealed record RunView(
    string RunId,
    string Workflow,
    RunState State,
    CountsView Counts,
    DateTimeOffset CreatedAt,
    DateTimeOffset? FinishedAt,
    double DurationSeconds,
    string OutputUri,
    string? StopReason,
    string? Error,
    string Url,
    string TasksUrl,
    string RunJsonUrl,
    Pipelines.Usage.RunUsage? Usage = null);

/// <summary>One page of a listing.</summary>
public sealed record PageView<T>(IReadOnlyList<T> Items, int Total, int Offset, int Limit);

/// <summary>One input file of a task.</summary>
public sealed record InputView(string Key, long Size);

/// <summary>A task: its inputs, attempts, exit code, the log of each step, and why it is held back when it is.</summary>
public sealed record TaskView(
    int Index,
    string TaskId,
    TaskState State,
    IReadOnlyList<InputView> Inputs,
    int Attempts,
    long? ExitCode,
    string? Error,
    string? Worker,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    IReadOnlyDictionary<string, string> Logs,
    TaskHold? Hold = null);

/// <summary>The step logs a run has written so far (a step's log is written when the step ends), and the run's state.</summary>
public sealed record LogsView(string RunId, RunState State, IReadOnlyList<LogView> Logs);

/// <summary>One step log: its task (index, id, state), its step, and where to read it.</summary>
public sealed record LogView(int? Task, string TaskId, string? TaskState, string Step, string Url);

/// <summary>One problem of a refused workflow, pointing at the user's line.</summary>
public sealed record ProblemView(string Path, string Message, int Line, int Column)
{
    public static ProblemView From(WorkflowProblem p) => new(p.Path, p.Message, p.Line, p.Column);
}
