using System.Reflection;
using System.Runtime.InteropServices;

namespace Pipelines.Cli;

/// <summary>`pipelines --version [--json]`: the engine's version (the one run.json records), the commit it was built from, and the .NET it runs on.</summary>
internal static class VersionInfo
{
    public const string Schema = "pipelines.version/1";

    /// <summary>--version, alone or with --json: answered before the command line is parsed, as every tool does.</summary>
    public static bool Asked(string[] args) => args.Contains("--version") && args.All(a => a is "--version" or "--json");

    public static int Print(bool json)
    {
        var informational = typeof(EngineVersion).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "";
        var commit = informational.Contains('+', StringComparison.Ordinal) ? informational[(informational.IndexOf('+', StringComparison.Ordinal) + 1)..] : null;
        var version = EngineVersion.Current;
        var dotnet = RuntimeInformation.FrameworkDescription;
        if (json)
        {
            JsonOut.Write(Schema, new { Version = version, Commit = commit, Dotnet = dotnet });
        }
        else
        {
            Console.WriteLine($"pipelines {version}" + (commit is null ? "" : $" (commit {commit[..Math.Min(12, commit.Length)]})") + $", {dotnet}");
        }

        return Cli.Ok;
    }
}
