using Pipelines.Canary;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Cli.Commands;

/// <summary>
/// What `pipelines run --candidate` prints once the canary's candidate has ended, in-process or
/// through a server: canary/summary.txt, or why there is none; and the exit code it leads to.
/// </summary>
internal static class CanaryOutcome
{
    /// <summary>The comparison files read from the current run's folder (null when not written).</summary>
    public static async Task<(byte[]? Diff, byte[]? Summary)> ReadAsync(StorageLocation runFolder, CancellationToken ct) =>
        (await ReadOrNullAsync(runFolder, CanaryLink.DiffJson, ct).ConfigureAwait(false), await ReadOrNullAsync(runFolder, CanaryLink.SummaryText, ct).ConfigureAwait(false));

    /// <summary>
    /// Prints the summary and returns the exit code: a run that failed exits 1 whatever the canary
    /// says; a run that succeeded exits 0 only when the canary found both sides equal.
    /// </summary>
    public static int Print(int runCode, byte[]? diff, byte[]? summary, RunState candidateState, string? candidateError)
    {
        if (diff is null || summary is null)
        {
            Console.WriteLine($"canary: no comparison: the candidate's run ended {candidateState.Name()}{(candidateError is null ? "" : ": " + candidateError)}");
            return Cli.Failed;
        }

        Console.Write(System.Text.Encoding.UTF8.GetString(summary));
        Console.WriteLine($"  diff:    {CanaryLink.DiffJson} in the run's output");
        return runCode == Cli.Ok && CanaryDiff.FromJson(diff).Verdict == CanaryDiff.Equal ? Cli.Ok : Cli.Failed;
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
