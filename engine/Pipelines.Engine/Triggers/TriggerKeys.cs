using Pipelines.Runs;

namespace Pipelines.Triggers;

/// <summary>
/// Which keys a trigger may hand to a run. A task stages each input to /in/&lt;relative key&gt;, so
/// a key with '..' segments would write outside the task's folder: such keys never become work.
/// </summary>
internal static class TriggerKeys
{
    /// <summary>Why the key (relative to the trigger's prefix) can never be an input, or null when it can.</summary>
    public static string? Problem(string relativeKey)
    {
        if (relativeKey.Length == 0)
        {
            return "the key is the prefix itself";
        }

        if (relativeKey.Contains('\0', StringComparison.Ordinal) || relativeKey.Contains('\\', StringComparison.Ordinal))
        {
            return "the key holds a NUL or backslash";
        }

        // The rule every run's listing applies (no '.', '..' or empty segment, control characters,
        // bad UTF-8, S3's length limit): such a key is recorded as rejected with the reason, never
        // handed to a run.
        return Storage.KeyNames.Problem(relativeKey) is { } problem ? "the key " + problem : null;
    }

    /// <summary>
    /// The registered workflow's output location against the trigger's prefix. A run's results
    /// written under the watched prefix must not start the next run (a loop), so the ledger
    /// records them as rejected, with the reason, as a run's listing leaves them out.
    /// </summary>
    public static InputScope OutputScope(RegisteredTrigger trigger) =>
        new(trigger.Uri, SubmitterRunStarter.ForTrigger(trigger).Output.Uri);

    /// <summary>Why the key is no new work because a run of this workflow wrote it, or null.</summary>
    public static string? OutputProblem(InputScope outputs, string relativeKey) =>
        outputs.IsEngineOutput(relativeKey) ? $"the key is a run's output under the workflow's output.uri {outputs.OutputUri}" : null;
}
