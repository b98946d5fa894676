using System.Globalization;
using System.Text.Json.Serialization;

namespace Pipelines.Explain;

/// <summary>Whether one task was taken from the cache (and from which run), and if it ran, why.</summary>
public sealed record TaskExplanation(
    [property: JsonPropertyName("run_id")] string RunId,
    [property: JsonPropertyName("task_index")] int TaskIndex,
    [property: JsonPropertyName("task_id")] string TaskId,
    [property: JsonPropertyName("state")] string State,
    [property: JsonPropertyName("cached_from")] string? CachedFrom,
    [property: JsonPropertyName("ran_because")] RanBecause? RanBecause)
{
    /// <summary>What it says to people, a line each.</summary>
    public IReadOnlyList<string> Lines()
    {
        var head = $"task {TaskIndex.ToString(CultureInfo.InvariantCulture)} ({TaskId}) of run {RunId}: {State}";
        if (CachedFrom is not null)
        {
            return [head, $"  taken from the cache: run {CachedFrom} made the same task id, and its outputs still match their sha256"];
        }

        if (RanBecause is null)
        {
            return [head, State is "queued" or "running" ? "  not decided yet: the cache has not been consulted" : "  no reason recorded: the task did not start, or ran under an engine that did not record one"];
        }

        var lines = new List<string> { head, "  ran because " + RanBecause.Describe() + (RanBecause.Changes is { Count: > 0 } ? ":" : "") };
        lines.AddRange((RanBecause.Changes ?? []).Select(c => "    " + c.Describe()));
        if (RanBecause.Detail is not null && RanBecause.Reason is RanBecause.NoEarlierRun or RanBecause.EarlierIdentityUnknown)
        {
            lines.Add("  (" + RanBecause.Detail + ")");
        }

        return lines;
    }
}

/// <summary>A run in sum: how many tasks were cached, how many ran, and the reasons they ran, counted by component.</summary>
public sealed record RunExplanation(
    [property: JsonPropertyName("run_id")] string RunId,
    [property: JsonPropertyName("tasks")] int Tasks,
    [property: JsonPropertyName("cached")] int Cached,
    [property: JsonPropertyName("ran")] int Ran,
    [property: JsonPropertyName("not_run")] int NotRun,
    [property: JsonPropertyName("reasons")] IReadOnlyList<ReasonCount> Reasons)
{
    public IReadOnlyList<string> Lines()
    {
        var lines = new List<string>
        {
            $"run {RunId}: {Tasks} task(s): {Cached} cached, {Ran} ran" + (NotRun > 0 ? $", {NotRun} did not run" : ""),
        };
        lines.AddRange(Reasons.Select(r => $"  {r.Count,6} ran because of {r.Reason}"));
        return lines;
    }
}

/// <summary>How many tasks of a run ran for one reason (a changed component counts once per task).</summary>
public sealed record ReasonCount(
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("count")] int Count);
