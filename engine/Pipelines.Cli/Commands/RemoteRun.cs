using System.Diagnostics;
using Pipelines.RunStore;
using Pipelines.Server.Api;

namespace Pipelines.Cli.Commands;

/// <summary>`run` and `status` against a server: the same lines as in-process, read over the REST API.</summary>
internal static class RemoteRun
{
    public static async Task<int> RunAsync(ServerClient client, string file, string yaml, IReadOnlyList<string> set, RunCommand.Settings settings, Stopwatch clock, CancellationToken ct)
    {
        var submitted = await client.SubmitAsync(yaml, file, set, ct, (settings.Candidate, settings.Sample, settings.Tolerance)).ConfigureAwait(false);
        foreach (var w in submitted.Warnings)
        {
            Console.Error.WriteLine($"{file}: warning: {w}");
        }

        Console.WriteLine($"run {submitted.RunId}: {submitted.Tasks} task(s) over {submitted.Inputs} input file(s), submitted to the server");
        Console.WriteLine($"output: {submitted.OutputUri}");
        if (submitted.CanaryRunId is not null)
        {
            Console.WriteLine($"canary: run {submitted.CanaryRunId} (in {Pipelines.Canary.CanaryLink.Folder})");
        }

        RunView run;
        string? last = null;
        var lastPrint = Stopwatch.StartNew();
        try
        {
            while (true)
            {
                run = await client.GetRunAsync(submitted.RunId, ct).ConfigureAwait(false);
                if (run.State.IsTerminal())
                {
                    break;
                }

                var c = run.Counts;
                var line = $"{c.Total - c.Queued - c.Running}/{c.Total} tasks ended ({c.Succeeded} succeeded, {c.Cached} cached, {c.Failed} failed), {c.Running} running" + (run.State == RunState.Gathering ? ", gathering" : "");
                if (line != last && lastPrint.Elapsed > TimeSpan.FromSeconds(2))
                {
                    Console.WriteLine(line);
                    last = line;
                    lastPrint.Restart();
                }

                await Task.Delay(500, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"stopped watching; the run goes on on the server (pipelines status {submitted.RunId} --server ...)");
            throw;
        }

        await PrintAsync(client, run, $"in {clock.Elapsed.TotalSeconds:0.0}s", ct).ConfigureAwait(false);
        var code = run.State == RunState.Succeeded ? Cli.Ok : Cli.Failed;
        if (submitted.CanaryRunId is { } candidate)
        {
            var canaryRun = await client.GetRunAsync(candidate, ct).ConfigureAwait(false);
            while (!canaryRun.State.IsTerminal())
            {
                await Task.Delay(500, ct).ConfigureAwait(false);
                canaryRun = await client.GetRunAsync(candidate, ct).ConfigureAwait(false);
            }

            var diff = await client.GetFileAsync(run.RunId, Pipelines.Canary.CanaryLink.DiffJson, ct).ConfigureAwait(false);
            var summary = await client.GetFileAsync(run.RunId, Pipelines.Canary.CanaryLink.SummaryText, ct).ConfigureAwait(false);
            code = CanaryOutcome.Print(code, diff, summary, canaryRun.State, canaryRun.Error);
        }

        return code;
    }

    public static async Task<int> StatusAsync(ServerClient client, string runId, CancellationToken ct)
    {
        var run = await client.GetRunAsync(runId, ct).ConfigureAwait(false);
        await PrintAsync(client, run, null, ct).ConfigureAwait(false);
        return run.State == RunState.Failed ? Cli.Failed : Cli.Ok;
    }

    private static async Task PrintAsync(ServerClient client, RunView run, string? wall, CancellationToken ct)
    {
        var c = run.Counts;
        Console.WriteLine($"run {run.RunId} ({run.Workflow}): {run.State.Name()}" + (wall is null ? "" : " " + wall));
        Console.WriteLine($"  tasks:   {c.Total} ({c.Queued} queued, {c.Running} running, {c.Succeeded} succeeded, {c.Cached} cached, {c.Failed} failed, {c.Cancelled} cancelled)");
        Console.WriteLine($"  created: {run.CreatedAt.UtcDateTime:u}" + (run.FinishedAt is { } f ? $", finished {f.UtcDateTime:u} ({run.DurationSeconds:0.0}s)" : ""));
        if (run.State.IsTerminal())
        {
            var summary = await client.GetRunSummaryAsync(run.RunId, ct).ConfigureAwait(false);
            if (summary is null)
            {
                Console.WriteLine("  results: none (run.json was not written)");
            }
            else
            {
                RunJsonNotes.PrintResults(summary);
                RunJsonNotes.Print(summary);
            }
        }

        if (run.Error is not null)
        {
            Console.WriteLine($"  error:   {run.Error}");
        }

        if (c.Failed > 0)
        {
            var failed = await client.GetTasksAsync(run.RunId, "failed", 5, ct).ConfigureAwait(false);
            foreach (var t in failed.Items)
            {
                Console.WriteLine($"  failed:  task {t.Index} ({t.TaskId}): {(t.Error ?? "").Split('\n')[0]}");
            }
        }

        Console.WriteLine($"  output:  {run.OutputUri}");
    }
}
