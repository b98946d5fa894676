using System.ComponentModel;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>
/// `pipelines cancel RUN [--wait]`: queued tasks never start, running containers are stopped,
/// and the run ends cancelled (Runs.RunCatalog, as POST /api/runs/{id}/cancel). An embedded run
/// is cancelled by the process that runs it. Exit 0 asked (with --wait: ended cancelled), 4 no
/// such run, 1 the run had ended.
/// </summary>
public sealed class CancelCommand : AsyncCommand<CancelCommand.Settings>
{
    public sealed class Settings : RunSourceSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("The run to cancel.")]
        public string RunId { get; init; } = "";

        [CommandOption("--wait")]
        [Description("Wait until the run has ended (its running containers stopped and its provenance written), and print it.")]
        public bool Wait { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        await using var source = await IRunSource.OpenAsync(settings, cancellationToken).ConfigureAwait(false);
        var run = await source.CancelAsync(settings.RunId, $"{Environment.UserName}@{Environment.MachineName}", cancellationToken).ConfigureAwait(false);
        Console.WriteLine($"run {run.RunId}: cancel requested; queued tasks will not start, running containers are stopped, and the run ends cancelled");
        if (!settings.Wait)
        {
            return Cli.Ok;
        }

        while (!run.Ended)
        {
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            run = await source.GetAsync(settings.RunId, cancellationToken).ConfigureAwait(false);
        }

        foreach (var line in run.Lines($"run {run.RunId}{(run.Workflow is null ? "" : $" ({run.Workflow})")}: {run.State}", times: true))
        {
            Console.WriteLine(line);
        }

        return run.State == "cancelled" ? Cli.Ok : StatusCommand.Code(run);
    }
}
