namespace Pipelines.Model;

/// <summary>One way a workflow file breaks the contract, pointing at the user's line.</summary>
public sealed record WorkflowProblem(string Path, string Message, int Line, int Column)
{
    public override string ToString() =>
        Line > 0 ? $"line {Line}, column {Column}: {Path}: {Message}" : $"{Path}: {Message}";
}

/// <summary>The workflow file was refused before anything ran; carries every problem found.</summary>
public sealed class WorkflowInvalidException(string source, IReadOnlyList<WorkflowProblem> problems)
    : PipelinesException(
        $"{source} is not a valid workflow ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}):"
        + Environment.NewLine
        + string.Join(Environment.NewLine, problems.Select(p => "  " + p)),
        retryHelps: false)
{
    public IReadOnlyList<WorkflowProblem> Problems { get; } = problems;
}
