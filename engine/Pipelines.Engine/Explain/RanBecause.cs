using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pipelines.Explain;

/// <summary>
/// Why a task ran rather than being taken from the cache, decided when the cache was consulted
/// and kept with the task's provenance rows (<c>ran_because</c>, as JSON).
/// </summary>
public sealed record RanBecause(
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("detail")] string? Detail = null,
    [property: JsonPropertyName("earlier_run")] string? EarlierRun = null,
    [property: JsonPropertyName("earlier_task")] string? EarlierTask = null,
    [property: JsonPropertyName("changes")] IReadOnlyList<IdentityChange>? Changes = null)
{
    /// <summary>No task of this workflow and unit succeeded before in this output location.</summary>
    public const string NoEarlierRun = "no-earlier-run";

    /// <summary>The nearest earlier task of the same workflow and unit had another identity: <see cref="Changes"/>.</summary>
    public const string Changed = "changed";

    /// <summary>The nearest earlier task was recorded without its identity (an engine before identity format 2).</summary>
    public const string EarlierIdentityUnknown = "earlier-identity-unknown";

    /// <summary>The cache entry for this task id could not be read as a manifest.</summary>
    public const string EntryDamaged = "cache-entry-damaged";

    /// <summary>A cached output (or log) of the earlier run is gone.</summary>
    public const string OutputMissing = "cached-output-missing";

    /// <summary>A cached output's bytes no longer have the sha256 recorded when it was made.</summary>
    public const string OutputMismatch = "cached-output-mismatch";

    /// <summary>The task is a batch canary's candidate, which always runs and uses no cache (docs/algorithms.md).</summary>
    public const string CanaryCandidate = "canary-candidate";

    public string ToJson() => JsonSerializer.Serialize(this, ExplainJson.Default.RanBecause);

    /// <summary>The reason read back from a provenance row, or null for a row without one (a task that did not run, or an older engine's row).</summary>
    public static RanBecause? FromJson(string? json)
    {
        if (string.IsNullOrEmpty(json))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(json, ExplainJson.Default.RanBecause);
        }
        catch (JsonException e)
        {
            return new RanBecause("unreadable", "the recorded reason is not valid JSON: " + e.Message);
        }
    }

    /// <summary>One line for people.</summary>
    public string Describe() => Reason switch
    {
        NoEarlierRun => "no earlier run in this output location for this unit",
        Changed => $"the nearest earlier task of this workflow and unit (run {EarlierRun}, task {EarlierTask}) differed in {Changes?.Count ?? 0} component(s)",
        EarlierIdentityUnknown => $"the nearest earlier task of this workflow and unit (run {EarlierRun}, task {EarlierTask}) recorded no identity (made by an engine before identity format 2)",
        EntryDamaged => $"its cache entry could not be read ({Detail})",
        OutputMissing => $"its cached result (run {EarlierRun}) is incomplete: {Detail} is missing",
        OutputMismatch => $"its cached result (run {EarlierRun}) was changed: {Detail} no longer matches its sha256",
        CanaryCandidate => "it is a batch canary's candidate, which always runs and uses no cache",
        _ => Detail ?? Reason,
    };
}

/// <summary>
/// One component of a task's identity that differs from the nearest earlier task's: its path
/// (<c>steps[0].env.LC_ALL</c>, <c>inputs[3]</c>), its value before and now (null: absent), and
/// for an input its key.
/// </summary>
public sealed record IdentityChange(
    [property: JsonPropertyName("component")] string Component,
    [property: JsonPropertyName("before")] string? Before,
    [property: JsonPropertyName("now")] string? Now,
    [property: JsonPropertyName("key")] string? Key = null)
{
    /// <summary>What a run's summary counts: inputs by what happened to them, other components without an argument's position (<c>steps[0].command</c>).</summary>
    [JsonIgnore]
    public string Kind
    {
        get
        {
            if (Key is not null)
            {
                return Before is null ? "input added" : Now is null ? "input removed" : "input content";
            }

            var bracket = Component.LastIndexOf('[');
            return bracket > 0 && Component.EndsWith(']') && Component.LastIndexOf('.') < bracket ? Component[..bracket] : Component;
        }
    }

    /// <summary>One line for people: <c>inputs[3] (b.fastq) sha256 5e1a… → 9c0b…</c>.</summary>
    public string Describe()
    {
        if (Key is not null)
        {
            return Before is null ? $"{Component} ({Key}) added"
                : Now is null ? $"{Component} ({Key}) removed"
                : $"{Component} ({Key}) {IdentityDiff.TagKind(Now)} {Short(Before)} → {Short(Now)}";
        }

        return $"{Component}: {Quote(Before)} → {Quote(Now)}";
    }

    private static string Short(string tag) => tag.Length > 12 ? tag[..12] + "…" : tag;

    private static string Quote(string? value) => value is null ? "(none)" : "'" + value + "'";
}
