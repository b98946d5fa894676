using System.ComponentModel;
using Pipelines.Runs;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>
/// `pipelines logs RUN [TASK] [--follow]`: the step logs of a run (every task's, or one task's),
/// each under a header naming its task and step, in task order; with --follow, each log as its
/// step ends, until the run has ended. A step's log (stdout and stderr of every attempt, with
/// what the engine did) is written when the step ends (Runs.RunLogs).
/// </summary>
public sealed class LogsCommand : AsyncCommand<LogsCommand.Settings>
{
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(2);

    public sealed class Settings : RunSourceSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("The run id.")]
        public string RunId { get; init; } = "";

        [CommandArgument(1, "[TASK]")]
        [Description("One task: its index or its task id. Without it, every task.")]
        public string? Task { get; init; }

        [CommandOption("-f|--follow")]
        [Description("Keep printing logs as steps end, until the run has ended.")]
        public bool Follow { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        await using var source = await IRunSource.OpenAsync(settings, cancellationToken).ConfigureAwait(false);
        var printed = new HashSet<string>(StringComparer.Ordinal);
        var headers = settings.Task is null || settings.Follow;
        while (true)
        {
            var (ended, logs) = await source.LogsAsync(settings.RunId, settings.Task, cancellationToken).ConfigureAwait(false);
            if (!settings.Follow && logs.Count == 0)
            {
                Console.Error.WriteLine($"run {settings.RunId}{(settings.Task is null ? "" : " task " + settings.Task)} has no step log yet (a step's log is written when the step ends; --follow waits for them)");
                return Cli.Ok;
            }

            headers |= logs.Count > 1;
            foreach (var log in logs.Where(l => !printed.Contains(l.Key)))
            {
                var text = await source.ReadAsync(settings.RunId, log.Key, cancellationToken).ConfigureAwait(false);
                if (text is null)
                {
                    continue;
                }

                if (headers)
                {
                    Console.WriteLine(RunLogs.Header(log));
                }

                using (var stdout = Console.OpenStandardOutput())
                {
                    await stdout.WriteAsync(text, cancellationToken).ConfigureAwait(false);
                }

                if (text.Length > 0 && text[^1] != (byte)'\n')
                {
                    Console.WriteLine();
                }

                printed.Add(log.Key);
            }

            // Every source reads the run's state before it lists: a listing made once the run had
            // ended holds every log it will ever have, and nothing written after the last look is missed.
            if (!settings.Follow || ended)
            {
                return Cli.Ok;
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }
    }
}
