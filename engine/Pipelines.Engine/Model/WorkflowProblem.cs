namespace Pipelines.Model;

/// <summary>One way a workflow file breaks the contract, pointing at the user's line.</summary>
public sealed record WorkflowProblem(string Path, string Message, int Line, int Column)
{
    public override string ToString() =>
        Line > 0 ? $"line {Line}, column {Column}: {Path}: {Message}" : $"{Path}: {Message}";
}

/// <summary>A file the engine reads (a workflow, a function) was refused before anything ran; carries every problem found.</summary>
public abstract class FileInvalidException(string source, string kind, IReadOnlyList<WorkflowProblem> problems)
    : PipelinesException(
        $"{source} is not a valid {kind} ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}):"
        + Environment.NewLine
        + string.Join(Environment.NewLine, problems.Select(p => "  " + p)),
        retryHelps: false)
{
    public IReadOnlyList<WorkflowProblem> Problems { get; } = problems;
}

/// <summary>The workflow file was refused before anything ran.</summary>
public sealed class WorkflowInvalidException(string source, IReadOnlyList<WorkflowProblem> problems)
    : FileInvalidException(source, "workflow", problems);
