using Pipelines.Model;

namespace Pipelines.Runs;

/// <summary>
/// One thing a submission tells its user, as the text to show: a workflow warning, files that
/// group_by left out, or a note (earlier runs' results left out of the input, which is by design).
/// The engine writes these texts once; the CLI prints them and the API returns them.
/// </summary>
public sealed record SubmitWarning(string Text, bool IsNote = false)
{
    /// <summary>Everything a run's submission of <paramref name="tasks"/> tasks has to say, in the order a user reads it.</summary>
    public static IReadOnlyList<SubmitWarning> Of(Workflow workflow, int tasks, int filesUngrouped, InputScope scope)
    {
        var warnings = workflow.Warnings.Select(w => new SubmitWarning(w.ToString())).ToList();
        if (OneShotAdvice.For(workflow, tasks) is { } advice)
        {
            warnings.Add(new(advice));
        }

        if (filesUngrouped > 0)
        {
            warnings.Add(new($"{filesUngrouped} selected file(s) do not match input.group_by and are left out"));
        }

        if (scope.Note is { } note)
        {
            warnings.Add(new(note, IsNote: true));
        }

        return warnings;
    }

    public override string ToString() => Text;
}
