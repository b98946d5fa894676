using System.Diagnostics;
using Pipelines.RunStore;
using Pipelines.Server.Api;

namespace Pipelines.Cli.Commands;

/// <summary>`run --server`: submit over the REST API, follow the run there, and say the same as in-process.</summary>
internal static class RemoteRun
{
    public static async Task<int> RunAsync(ServerClient client, string file, string yaml, RunCommand.Settings settings, TextWriter say, Stopwatch clock, CancellationToken ct)
    {
        var submitted = await client.SubmitAsync(yaml, file, settings.Set, ct, (settings.Candidate, settings.Sample, settings.Tolerance)).ConfigureAwait(false);
        foreach (var w in submitted.Warnings)
        {
            Console.Error.WriteLine($"{file}: warning: {w}");
        }

        say.WriteLine($"run {submitted.RunId}: {submitted.Tasks} task(s) over {submitted.Inputs} input file(s), submitted to the server");
        say.WriteLine($"output: {submitted.OutputUri}");
        if (submitted.CanaryRunId is not null)
        {
            say.WriteLine($"canary: run {submitted.CanaryRunId} (in {Pipelines.Canary.CanaryLink.Folder})");
        }

        RunView run;
        try
        {
            run = await FollowAsync(client, submitted.RunId, null, say, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"stopped watching; the run goes on on the server (pipelines status {submitted.RunId} --server ...)");
            throw;
        }

        var source = new ServerRunSource(client);
        var document = await source.GetAsync(run.RunId, ct).ConfigureAwait(false) with { WallSeconds = Math.Round(clock.Elapsed.TotalSeconds, 3) };
        var code = Cli.Of(run.State);
        if (!settings.Json)
        {
            foreach (var line in document.Lines($"run {run.RunId} ({run.Workflow}): {run.State.Name()} in {clock.Elapsed.TotalSeconds:0.0}s", times: true))
            {
                Console.WriteLine(line);
            }
        }

        if (submitted.CanaryRunId is { } candidate)
        {
            var canaryRun = await FollowAsync(client, candidate, "canary", say, ct).ConfigureAwait(false);
            var diff = await client.GetFileAsync(run.RunId, Pipelines.Canary.CanaryLink.DiffJson, ct).ConfigureAwait(false);
            var summary = await client.GetFileAsync(run.RunId, Pipelines.Canary.CanaryLink.SummaryText, ct).ConfigureAwait(false);
            (var text, var canaryDocument, code) = CanaryOutcome.Evaluate(code, candidate, diff, summary, canaryRun.State, canaryRun.Error);
            document = document with { Canary = canaryDocument };
            if (!settings.Json)
            {
                Console.Write(text);
            }
        }

        if (settings.Json)
        {
            JsonOut.Write(RunDocument.Schema, document);
        }

        return code;
    }

    /// <summary>Polls the run until it ends, saying its progress when it changes (at most every 2 s); <paramref name="label"/> starts each line.</summary>
    private static async Task<RunView> FollowAsync(ServerClient client, string runId, string? label, TextWriter say, CancellationToken ct)
    {
        string? last = null;
        var lastPrint = Stopwatch.StartNew();
        while (true)
        {
            var run = await client.GetRunAsync(runId, ct).ConfigureAwait(false);
            if (run.State.IsTerminal())
            {
                return run;
            }

            var line = (label is null ? "" : label + ": ") + RunDocument.Progress(run.Counts.ToCounts(), run.State == RunState.Gathering);
            if (line != last && lastPrint.Elapsed > TimeSpan.FromSeconds(2))
            {
                say.WriteLine(line);
                last = line;
                lastPrint.Restart();
            }

            await Task.Delay(500, ct).ConfigureAwait(false);
        }
    }
}
