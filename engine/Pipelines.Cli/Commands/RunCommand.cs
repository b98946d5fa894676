using System.ComponentModel;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Canary;
using Pipelines.Gather;
using Pipelines.Hosting;
using Pipelines.Queue;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Telemetry;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>
/// `pipelines run FILE`: plan, run, wait, summarise. The exit code is the run's (Cli: 0
/// succeeded, 1 a task failed, 6 cancelled), 2 for an invalid file, and with a canary 3 when
/// the candidate differs.
/// </summary>
public sealed class RunCommand : AsyncCommand<RunCommand.Settings>
{
    public sealed class Settings : WorkflowSettings, IRemoteSettings
    {
        [CommandOption("--server <URL>")]
        [Description("Submit to this `pipelines server` (or PIPELINES_SERVER) instead of running in this process.")]
        public string? Server { get; init; }

        [CommandOption("--key <KEY>")]
        [Description("The server's access key (default PIPELINES_SERVER_KEY).")]
        public string? Key { get; init; }
        [CommandOption("--tenant <ID>")]
        [Description(Remote.TenantHelp)]
        public string? Tenant { get; init; }

        [CommandOption("--candidate <STEP=IMAGE>")]
        [Description("Batch canary: run a sample of the tasks again with this image for STEP (a local image or algorithm://NAME@VERSION) and compare; exit 3 when they differ (docs/algorithms.md).")]
        public string? Candidate { get; init; }

        [CommandOption("--sample <SHARE>")]
        [Description("With --candidate: the tasks to compare, a share (5%, the default) or a number (3); the same tasks on every run of the same input.")]
        public string? Sample { get; init; }

        [CommandOption("--tolerance <X>")]
        [Description("With --candidate: numbers in gathered tables whose relative difference is at most X count as equal (default 1e-9).")]
        public double? Tolerance { get; init; }

        [CommandOption("-w|--local-workers <N>")]
        [Description("Tasks this process runs at once (default Worker:Concurrency, 4). With PostgreSQL, 0 leaves the tasks to `pipelines worker` processes.")]
        public int? LocalWorkers { get; init; }

        [CommandOption("--json")]
        [Description("Print the run's summary as JSON (schema pipelines.run/1, docs/cli.md) on stdout; progress goes to stderr.")]
        public bool Json { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();

        // PIPELINES_PROFILE=1: where the run's time went, span by span, on stderr at the end.
        using var profile = SpanProfile.FromEnvironment();
        var canary = CanaryRequest.Parse(settings.Candidate, settings.Sample, settings.Tolerance);
        var (yaml, dir) = await WorkflowFile.ReadAsync(settings.File, cancellationToken).ConfigureAwait(false);

        // With --json, stdout holds the document alone: what is said on the way goes to stderr.
        var say = settings.Json ? Console.Error : Console.Out;
        if (Remote.ServerOf(settings) is not null)
        {
            using var client = Remote.Client(settings);
            return await RemoteRun.RunAsync(client, settings.File, yaml, settings, say, clock, cancellationToken).ConfigureAwait(false);
        }

        var values = new Dictionary<string, string?>();
        if (settings.LocalWorkers is { } n)
        {
            values["Worker:Concurrency"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var config = EngineHost.Configuration(settings.Config, values);
        var postgres = EngineHost.UsesPostgres(config);
        var workers = settings.LocalWorkers ?? EngineSettings.Read(config).Worker.Concurrency;
        if (workers < 0 || (workers == 0 && !postgres))
        {
            throw new PipelinesException("--local-workers must be at least 1 without PostgreSQL: nothing else would run the tasks", retryHelps: false);
        }

        if (workers > 0)
        {
            // This process runs jobs, so most likely the run's gather at its end: what the gather
            // makes at its first use is made now, on the core the start-up below leaves idle.
            _ = GatherPreparation.Start();
        }

        using var host = EngineHost.Build(config, worker: workers > 0, settings.Verbose ? LogLevel.Information : LogLevel.Warning);
        var store = host.Services.GetRequiredService<IRunStore>();
        var live = new List<LiveRun>();

        // With PostgreSQL the start makes the tables (Hosting/SchemaSetup) before anything is
        // submitted. Embedded, it has nothing the plan's first part (the file parsed, the images
        // pinned) needs: the two go side by side, on the two cores, and the run is recorded once the
        // host has started (its worker is then on the board: the warm containers start ahead).
        Task started;
        if (postgres)
        {
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
            started = Task.CompletedTask;
        }
        else
        {
            // The run's trace starts with the submit: spans are made once the tracer listens.
            EngineHost.StartTracing(host);
            started = Task.Run(() => host.StartAsync(cancellationToken), cancellationToken);
        }

        Exception? failure = null;
        try
        {
            var submitted = await host.Services.GetRequiredService<RunSubmitter>()
                .SubmitAsync(yaml, settings.File, dir, settings.Set, cancellationToken, canary, ready: started).ConfigureAwait(false);
            RunIndex.Record(submitted.RunId, submitted.OutputUri, submitted.WorkflowName);
            if (submitted.CanaryRunId is { } canaryRunId)
            {
                RunIndex.Record(canaryRunId, submitted.OutputUri.TrimEnd('/') + "/" + CanaryLink.Folder, submitted.WorkflowName);
            }

            foreach (var w in submitted.Warnings.Where(w => !w.IsNote))
            {
                Console.Error.WriteLine($"{settings.File}: warning: {w.Text}");
            }

            say.WriteLine($"run {submitted.RunId}: {submitted.Tasks} task(s) over {submitted.Inputs} input file(s), {(postgres ? "PostgreSQL" : "embedded")} mode, {(workers > 0 ? $"{workers} local worker(s)" : "remote workers")}");
            foreach (var note in submitted.Warnings.Where(w => w.IsNote))
            {
                say.WriteLine($"note: {note.Text}");
            }

            say.WriteLine($"output: {submitted.OutputUri}");
            if (submitted.CanaryRunId is not null)
            {
                say.WriteLine($"canary: {submitted.CanaryTasks} task(s) again with {canary!.Step}={canary.Image}, as run {submitted.CanaryRunId} (in {CanaryLink.Folder})");
            }

            // An embedded run lives in this process: it says how it goes beside the run index, and takes a cancel from there.
            LiveRun? Live(string runId)
            {
                if (postgres)
                {
                    return null;
                }

                var l = new LiveRun(store, runId, say);
                live.Add(l);
                return l;
            }

            // With no local worker, say so when no worker at all is connected: the run would wait for good.
            Func<int>? liveWorkers = workers == 0 ? () => host.Services.GetRequiredService<IWorkerBoard>().LiveServers() : null;
            var run = await WaitAsync(store, submitted.RunId, liveWorkers, null, Live(submitted.RunId), say, settings.Json, cancellationToken).ConfigureAwait(false);
            await using var source = new StoreRunSource(host, ownsHost: false);
            var document = await source.GetAsync(run.RunId, cancellationToken).ConfigureAwait(false) with { WallSeconds = Math.Round(clock.Elapsed.TotalSeconds, 3) };
            var code = Cli.Of(run.State);
            string? canaryText = null;
            if (submitted.CanaryRunId is { } candidate)
            {
                if (!settings.Json)
                {
                    Print(document, clock);
                }

                // The candidate's own progress, labelled: it can still be going after the run's summary.
                var canaryRun = await WaitAsync(store, candidate, liveWorkers, "canary", Live(candidate), say, settings.Json, cancellationToken).ConfigureAwait(false);
                var (diff, summary) = await CanaryOutcome.ReadAsync(host.Services.GetRequiredService<ObjectStoreFactory>().Open(run.OutputUri), cancellationToken).ConfigureAwait(false);
                (canaryText, var canaryDocument, code) = CanaryOutcome.Evaluate(code, candidate, diff, summary, canaryRun.State, canaryRun.Error);
                document = document with { Canary = canaryDocument };
            }

            if (settings.Json)
            {
                JsonOut.Write(RunDocument.Schema, document);
            }
            else if (canaryText is not null)
            {
                Console.Write(canaryText);
            }
            else
            {
                Print(document, clock);
            }

            return code;
        }
        catch (Exception e)
        {
            failure = e;
            throw;
        }
        finally
        {
            foreach (var l in live)
            {
                l.End();
            }

            // A plan refused before the host had started: its start ends first. When it failed too
            // (a refused plan did not wait for it), that is said, not dropped.
            await Task.WhenAny(started).ConfigureAwait(false);
            if (started.IsFaulted && failure is not null && !ReferenceEquals(failure, started.Exception!.InnerException))
            {
                Console.Error.WriteLine($"note: the engine's start failed too: {started.Exception.GetBaseException().Message}");
            }

            await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static void Print(RunDocument document, Stopwatch clock)
    {
        foreach (var line in document.Lines($"run {document.RunId} {document.State} in {clock.Elapsed.TotalSeconds:0.0}s", times: false))
        {
            Console.WriteLine(line);
        }
    }

    /// <summary>
    /// Follows a run to its end with a bar (a terminal, without --json) or plain lines to
    /// <paramref name="say"/>; <paramref name="label"/> (canary) starts each line; an embedded run publishes itself on the way.
    /// </summary>
    private static async Task<RunRecord> WaitAsync(IRunStore store, string runId, Func<int>? liveWorkers, string? label, LiveRun? live, TextWriter say, bool json, CancellationToken ct)
    {
        var prefix = label is null ? "" : label + ": ";
        var follow = new RunFollower(store, runId, liveWorkers);
        if (Cli.Interactive && !json)
        {
            RunRecord? result = null;
            await AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async ctx =>
                {
                    var bar = ctx.AddTask(label is null ? "tasks" : label + " tasks");
                    Stopwatch? gathering = null;
                    while (true)
                    {
                        if (await follow.PollAsync(ct).ConfigureAwait(false) is var (run, counts))
                        {
                            gathering = run.State == RunState.Gathering ? gathering ?? Stopwatch.StartNew() : null;
                            if (live is not null)
                            {
                                await live.PollAsync(run, counts, ct).ConfigureAwait(false);
                            }

                            bar.MaxValue = Math.Max(1, counts.Total);
                            bar.Value = counts.Ended;
                            bar.Description = Markup.Escape($"{counts.Ended}/{counts.Total} ended, {counts.Running} running, {counts.Failed} failed" + (counts.Held > 0 ? $", {counts.Held} held" : "") + (run.State == RunState.Gathering ? ", gathering" : ""));
                            if (run.State.IsTerminal())
                            {
                                result = run;
                                return;
                            }
                        }

                        await Task.Delay(follow.Delay(PollMilliseconds(250, live, gathering)), ct).ConfigureAwait(false);
                    }
                }).ConfigureAwait(false);
            return result!;
        }

        string? last = null;
        var lastPrint = Stopwatch.StartNew();
        Stopwatch? gathering = null;
        while (true)
        {
            if (await follow.PollAsync(ct).ConfigureAwait(false) is var (run, counts))
            {
                gathering = run.State == RunState.Gathering ? gathering ?? Stopwatch.StartNew() : null;
                if (live is not null)
                {
                    await live.PollAsync(run, counts, ct).ConfigureAwait(false);
                }

                if (run.State.IsTerminal())
                {
                    return run;
                }

                var line = prefix + RunDocument.Progress(counts, run.State == RunState.Gathering);
                if (line != last && lastPrint.Elapsed > TimeSpan.FromSeconds(2))
                {
                    say.WriteLine(line);
                    last = line;
                    lastPrint.Restart();
                }
            }

            await Task.Delay(follow.Delay(PollMilliseconds(100, live, gathering)), ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The wait before the next look at the run: <paramref name="usual"/>, but 10 ms in the first
    /// seconds of an embedded run's gather (<paramref name="live"/>: its store is this process's
    /// memory, a look costs microseconds). Its end is what the command waits for, and at 100 ms it
    /// was seen 50 ms after it in the mean (docs/benchmarks.md, "A run's fixed cost"). A gather
    /// that lasts (a large one, or one waiting out an S3 outage) is looked at as usual again.
    /// </summary>
    private static int PollMilliseconds(int usual, LiveRun? live, Stopwatch? gathering) =>
        live is not null && gathering is not null && gathering.Elapsed < TimeSpan.FromSeconds(5) ? 10 : usual;
}
