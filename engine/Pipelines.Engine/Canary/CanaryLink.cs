using System.Text.Json.Serialization;

namespace Pipelines.Canary;

/// <summary>
/// What ties the two runs of a batch canary together, kept in each run's definition: the run of
/// the current image (the user's run, whose results are its own) and the candidate's run of the
/// sample, whose folder is <c>canary/</c> inside the current run's and which uses no cache.
/// </summary>
public sealed record CanaryLink(
    CanaryRole Role,
    string CurrentRunId,
    string CandidateRunId,
    string Step,
    string CurrentImage,
    string CandidateImage,
    string Sample,
    double Tolerance)
{
    /// <summary>The folder of the candidate's run, relative to the current run's.</summary>
    public const string Folder = "canary/";

    /// <summary>Where the comparison is written, relative to the current run's folder.</summary>
    public const string DiffJson = Folder + "diff.json";

    /// <summary>The comparison for people, relative to the current run's folder.</summary>
    public const string SummaryText = Folder + "summary.txt";

    /// <summary>The candidate run's id: the current run's with a suffix.</summary>
    public static string CandidateRunIdOf(string currentRunId) => currentRunId + "-canary";

    /// <summary>
    /// On the candidate's side: for each of its tasks (by index), the index of the current run's
    /// task it repeats. Null on the current side.
    /// </summary>
    public IReadOnlyList<int>? Sampled { get; init; }

    /// <summary>How many tasks the current run has (for the report).</summary>
    public int TasksInRun { get; init; }
}

/// <summary>Which side of a batch canary a run is.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<CanaryRole>))]
public enum CanaryRole { Current, Candidate }
