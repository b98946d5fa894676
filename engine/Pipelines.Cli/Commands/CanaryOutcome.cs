using Pipelines.Canary;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Cli.Commands;

/// <summary>
/// What `pipelines run --candidate` says once the canary's candidate has ended, in-process or
/// through a server: canary/summary.txt (or why there is none), the canary's part of the run's
/// JSON document, and the exit code it leads to.
/// </summary>
internal static class CanaryOutcome
{
    /// <summary>The comparison files read from the current run's folder (null when not written).</summary>
    public static async Task<(byte[]? Diff, byte[]? Summary)> ReadAsync(StorageLocation runFolder, CancellationToken ct) =>
        (await ReadOrNullAsync(runFolder, CanaryLink.DiffJson, ct).ConfigureAwait(false), await ReadOrNullAsync(runFolder, CanaryLink.SummaryText, ct).ConfigureAwait(false));

    /// <summary>
    /// The text to print, the document and the exit code: a run that did not succeed keeps its
    /// own code whatever the canary says; else equal is 0, a difference is
    /// <see cref="Cli.Differs"/> (a finding, not a failure), and a canary that compared nothing
    /// or not everything (its candidate failed) is <see cref="Cli.Failed"/>.
    /// </summary>
    public static (string Text, RunDocument.CanaryDocument Document, int Code) Evaluate(int runCode, string candidateRunId, byte[]? diff, byte[]? summary, RunState candidateState, string? candidateError)
    {
        if (diff is null || summary is null)
        {
            var text = $"canary: no comparison: the candidate's run {candidateRunId} ended {candidateState.Name()}{(candidateError is null ? "" : ": " + candidateError)}\n";
            return (text, new RunDocument.CanaryDocument(candidateRunId, candidateState.Name(), candidateError, null, null, null), runCode == Cli.Ok ? Cli.Failed : runCode);
        }

        var verdict = CanaryDiff.FromJson(diff).Verdict;
        var code = runCode != Cli.Ok ? runCode
            : verdict == CanaryDiff.Equal ? Cli.Ok
            : verdict == CanaryDiff.Different ? Cli.Differs
            : Cli.Failed;
        var document = new RunDocument.CanaryDocument(candidateRunId, candidateState.Name(), candidateError, verdict, CanaryLink.DiffJson, CanaryLink.SummaryText);
        return (System.Text.Encoding.UTF8.GetString(summary) + $"  diff:    {CanaryLink.DiffJson} in the run's output\n", document, code);
    }

    private static async Task<byte[]?> ReadOrNullAsync(StorageLocation folder, string key, CancellationToken ct)
    {
        try
        {
            return await folder.Store.ReadAllAsync(folder.Key(key), ct).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
    }
}
