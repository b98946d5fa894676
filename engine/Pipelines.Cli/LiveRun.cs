using System.Diagnostics;
using Pipelines.Runs;
using Pipelines.RunStore;

namespace Pipelines.Cli;

/// <summary>
/// An embedded run while its process follows it: publishes its counts beside the run index (at
/// most once a second), so that `status` and `runs` in another shell see it, and takes a
/// `pipelines cancel` asked there, cancelling the run through RunCatalog as the server would.
/// </summary>
internal sealed class LiveRun(IRunStore store, string runId, TextWriter output)
{
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(1);
    private readonly Stopwatch _since = new();

    public async Task PollAsync(RunRecord run, TaskCounts counts, CancellationToken ct)
    {
        var who = RunIndex.PendingCancel(runId);
        if (who is not null)
        {
            var cancelled = await RunCatalog.CancelAsync(store, runId, who, ct).ConfigureAwait(false);
            if (cancelled.Outcome == RunCatalog.CancelOutcome.Requested)
            {
                output.WriteLine($"run {runId}: cancel requested by {who}; queued tasks will not start, running containers are stopped");
                run = cancelled.Run!;
                counts = cancelled.Counts!;
            }
        }

        if (who is not null || !_since.IsRunning || _since.Elapsed >= Every)
        {
            RunIndex.SetLive(runId, run.State.Name(), counts);
            _since.Restart();
        }

        // Cleared after the run as it now is was published: the asker reads that once this is gone.
        if (who is not null)
        {
            RunIndex.ClearCancel(runId);
        }
    }

    public void End() => RunIndex.EndLive(runId);
}
