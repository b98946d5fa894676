using Pipelines.Model;
using Pipelines.Storage;

namespace Pipelines.Runs;

/// <summary>
/// Which local folders a workflow that did not come from a file on this machine (one submitted
/// or registered over the API) may name. The engine runs as root: without this rule a key
/// holder could read any host folder as input, or write into any as output. Configuration key
/// <c>Submit:LocalRoots</c> (none by default: such workflows use s3:// only). Links on the way
/// are resolved before the check, so a link under a root cannot lead out of it.
/// </summary>
public sealed record LocalRoots(IReadOnlyList<string> Roots)
{
    public static LocalRoots None { get; } = new([]);

    /// <summary>
    /// Parses a workflow; one that was not read from a file on this machine (an API submission,
    /// <paramref name="baseDirectory"/> null) may name local folders only under the roots.
    /// </summary>
    public Workflow Parse(string yaml, string source, string? baseDirectory, IReadOnlyList<string> overrides)
    {
        var workflow = WorkflowParser.Parse(yaml, source, baseDirectory, overrides);
        if (baseDirectory is null)
        {
            Check(workflow);
        }

        return workflow;
    }

    /// <summary>Throws a workflow problem for each local location outside the roots.</summary>
    public void Check(Workflow workflow)
    {
        var problems = new List<WorkflowProblem>();
        foreach (var (field, uri, _) in workflow.Locations())
        {
            Add(field, uri);
        }

        if (problems.Count > 0)
        {
            throw new WorkflowInvalidException("the submitted workflow", problems);
        }

        void Add(string field, string? uri)
        {
            if (uri is null || uri.StartsWith("s3://", StringComparison.Ordinal) || Allows(uri))
            {
                return;
            }

            var allowed = Roots.Count == 0
                ? "none are allowed on this server (Submit:LocalRoots); use s3://"
                : "allowed are: " + string.Join(", ", Roots) + " (Submit:LocalRoots)";
            problems.Add(new WorkflowProblem(field, $"'{uri}' is a local folder of the server; for a workflow submitted over the API {allowed}", 0, 0));
        }
    }

    /// <summary>Whether a local path, its links resolved, is one of the roots or inside one.</summary>
    public bool Allows(string path)
    {
        var real = LocalPaths.Resolve(path);
        return Roots.Select(LocalPaths.Resolve).Any(root => real == root || real.StartsWith(root.TrimEnd('/') + "/", StringComparison.Ordinal));
    }
}
