using System.ComponentModel;
using Pipelines.RunStore;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>
/// `pipelines status RUN [--json]`: the run's state, counts (held tasks and why, while it goes
/// on), results and errors, from a server, PostgreSQL, or (embedded) this machine's runs. Exit
/// 0 while it goes on or when it succeeded, 1 failed, 6 cancelled, 4 no such run.
/// </summary>
public sealed class StatusCommand : AsyncCommand<StatusCommand.Settings>
{
    public sealed class Settings : RunSourceSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("The run id that `pipelines run` printed.")]
        public string RunId { get; init; } = "";

        [CommandOption("--json")]
        [Description("Print the run as JSON (schema pipelines.run/1, docs/cli.md).")]
        public bool Json { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        await using var source = await IRunSource.OpenAsync(settings, cancellationToken).ConfigureAwait(false);
        var run = await source.GetAsync(settings.RunId, cancellationToken).ConfigureAwait(false);
        if (settings.Json)
        {
            JsonOut.Write(RunDocument.Schema, run);
        }
        else
        {
            foreach (var line in run.Lines($"run {run.RunId}{(run.Workflow is null ? "" : $" ({run.Workflow})")}: {run.State}", times: true))
            {
                Console.WriteLine(line);
            }
        }

        return Code(run);
    }

    /// <summary>A run's exit code for the verbs that show one: its state's, and 1 for an embedded run whose process is gone.</summary>
    internal static int Code(RunDocument run) =>
        run.State == RunDocument.Interrupted ? Cli.Failed
        : Enum.TryParse<RunState>(run.State, ignoreCase: true, out var state) ? Cli.Of(state)
        : Cli.Ok;
}
