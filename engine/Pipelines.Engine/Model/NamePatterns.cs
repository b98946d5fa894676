using System.Text.RegularExpressions;

namespace Pipelines.Model;

/// <summary>What a name in a workflow may look like: of the workflow, of a step or table, of an environment variable.</summary>
internal static partial class NamePatterns
{
    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}$")]
    public static partial Regex Workflow();

    /// <summary>Step names, and gather table names, which become file names.</summary>
    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,62}$")]
    public static partial Regex Step();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    public static partial Regex EnvVariable();
}
