using System.Text.RegularExpressions;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Cli;

/// <summary>
/// `pipelines --help` and every command's `--help` print their text: a description is markup to
/// the console library, so a bracket that is not escaped breaks help for the whole CLI.
/// </summary>
[Integration]
public sealed partial class CliHelpTests
{
    [Fact]
    public async Task The_root_help_and_every_commands_help_print_and_exit_0()
    {
        var root = await CliRunner.RunAsync(["--help"]);
        Assert.True(root.ExitCode == 0, root.Stdout + root.Stderr);
        var commands = Commands(root.Stdout);
        Assert.Contains("run", commands);
        Assert.Contains("explain", commands);
        Assert.Contains("invoke", commands);
        Assert.Contains("algorithm", commands);
        Assert.True(commands.Count >= 15, string.Join(", ", commands));

        // Each command (and each of a branch's commands) in one process per command, at most four at once.
        using var gate = new SemaphoreSlim(4);
        var failures = await Task.WhenAll(commands.Select(async c =>
        {
            await gate.WaitAsync();
            try
            {
                var help = await CliRunner.RunAsync([c, "--help"]);
                var problems = help.ExitCode == 0 && help.Stdout.Contains("USAGE:", StringComparison.Ordinal) ? [] : new List<string> { $"{c}: exit {help.ExitCode}: {help.Stderr}" };
                foreach (var sub in Commands(help.Stdout))
                {
                    var subHelp = await CliRunner.RunAsync([c, sub, "--help"]);
                    if (subHelp.ExitCode != 0 || !subHelp.Stdout.Contains("USAGE:", StringComparison.Ordinal))
                    {
                        problems.Add($"{c} {sub}: exit {subHelp.ExitCode}: {subHelp.Stderr}");
                    }
                }

                return problems;
            }
            finally
            {
                gate.Release();
            }
        }));
        Assert.Empty(failures.SelectMany(f => f));
    }

    /// <summary>The names listed under COMMANDS: in a help text.</summary>
    private static List<string> Commands(string help)
    {
        var at = help.IndexOf("COMMANDS:", StringComparison.Ordinal);
        return at < 0 ? [] : CommandLine().Matches(help[at..]).Select(m => m.Groups[1].Value).Distinct().ToList();
    }

    [GeneratedRegex(@"^[ ]{4}([a-z][a-z-]*)\b", RegexOptions.Multiline)]
    private static partial Regex CommandLine();
}
