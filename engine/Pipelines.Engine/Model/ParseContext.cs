using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>What one parse collects: problems and warnings, and which nodes came from --set.</summary>
internal sealed class ParseContext
{
    public List<WorkflowProblem> Problems { get; } = [];

    public List<WorkflowProblem> Warnings { get; } = [];

    /// <summary>Nodes put in by --set, with the assignment they came from: they have no line in the file.</summary>
    public Dictionary<YamlNode, string> Overridden { get; } = new(ReferenceEqualityComparer.Instance);

    public void Warn(YamlNode node, string path, string message) =>
        Warnings.Add(new WorkflowProblem(path, message, (int)node.Start.Line, (int)node.Start.Column));

    public void Add(YamlNode node, string path, string message)
    {
        if (Overridden.TryGetValue(node, out var origin))
        {
            Problems.Add(new WorkflowProblem(path, $"{message} (from {origin})", 0, 0));
            return;
        }

        Problems.Add(new WorkflowProblem(path, message, (int)node.Start.Line, (int)node.Start.Column));
    }
}
