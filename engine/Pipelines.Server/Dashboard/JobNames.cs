using System.Collections.Concurrent;
using Hangfire.Common;
using Hangfire.Dashboard;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pipelines.Queue;
using Pipelines.RunStore;

namespace Pipelines.Server.Dashboard;

/// <summary>
/// Names a person can read for the dashboard's job lists ("fastq-stats run 20261126-050616-19e22e
/// task 12: 50 files"). Jobs carry ids only; the rest is looked up once in the run store and kept.
/// </summary>
internal sealed partial class JobNames(IRunStore store, ILogger<JobNames> log)
{
    private const int MaxCached = 20_000;
    private readonly ConcurrentDictionary<string, string> _workflows = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string RunId, int Index), int> _files = new();

    public string Describe(DashboardContext context, Job job)
    {
        var runId = job.Args.Count > 0 ? job.Args[0] as string : null;
        if (runId is null)
        {
            return job.Method.Name;
        }

        try
        {
            var workflow = Workflow(runId);
            if (job.Type == typeof(TaskJob) && job.Args.Count > 1 && job.Args[1] is int index)
            {
                var files = Files(runId, index);
                return $"{workflow} run {runId} task {index}" + (files is null ? "" : $": {files} file{(files == 1 ? "" : "s")}");
            }

            if (job.Type == typeof(TaskJob) && job.Args.Count > 1 && job.Args[1] is int[] { Length: > 0 } tasks)
            {
                return $"{workflow} run {runId} tasks {Tasks(tasks)}";
            }

            return job.Type == typeof(GatherJob) ? $"{workflow} run {runId} gather" : $"{workflow} run {runId} {job.Method.Name}";
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            LogLookupFailed(log, runId, e.Message);
            return job.Type == typeof(TaskJob) ? $"run {runId} " + (job.Args[1] is int[] tasks ? $"tasks {Tasks(tasks)}" : $"task {job.Args[1]}") : $"run {runId} {job.Method.Name}";
        }
    }

    /// <summary>A job's tasks: "3-10" when they follow each other, else "3, 5, 9".</summary>
    private static string Tasks(int[] tasks) =>
        tasks.Length > 1 && tasks[^1] - tasks[0] == tasks.Length - 1 ? $"{tasks[0]}-{tasks[^1]}" : string.Join(", ", tasks);

    private string Workflow(string runId)
    {
        if (_workflows.TryGetValue(runId, out var name))
        {
            return name;
        }

        // Hangfire renders its pages synchronously; a cached lookup per run keeps this cheap.
        name = store.GetRunAsync(runId, CancellationToken.None).GetAwaiter().GetResult()?.WorkflowName ?? "(unknown workflow)";
        Trim(_workflows);
        _workflows[runId] = name;
        return name;
    }

    private int? Files(string runId, int index)
    {
        if (_files.TryGetValue((runId, index), out var n))
        {
            return n;
        }

        var task = store.GetTaskAsync(runId, index, CancellationToken.None).GetAwaiter().GetResult();
        if (task is null)
        {
            return null;
        }

        Trim(_files);
        _files[(runId, index)] = task.Inputs.Count;
        return task.Inputs.Count;
    }

    private static void Trim<TKey, TValue>(ConcurrentDictionary<TKey, TValue> cache)
        where TKey : notnull
    {
        if (cache.Count >= MaxCached)
        {
            cache.Clear();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "dashboard: could not look up run {RunId} for a job name: {Error}")]
    private static partial void LogLookupFailed(ILogger logger, string runId, string error);
}
