using System.ComponentModel;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Canary;
using Pipelines.Gather;
using Pipelines.Hosting;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines run FILE`: plan, run, wait, summarise. Exit 0 all tasks succeeded, 1 a task failed, 2 invalid file.</summary>
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

        [CommandOption("--candidate <STEP=IMAGE>")]
        [Description("Batch canary: run a sample of the tasks again with this image for STEP (a local image or algorithm://NAME@VERSION) and compare; exit 1 when they differ (docs/algorithms.md).")]
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
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var canary = CanaryRequest.Parse(settings.Candidate, settings.Sample, settings.Tolerance);
        var (yaml, dir) = await WorkflowFile.ReadAsync(settings.File, cancellationToken).ConfigureAwait(false);
        if (Remote.ServerOf(settings) is not null)
        {
            using var client = Remote.Client(settings);
            return await RemoteRun.RunAsync(client, settings.File, yaml, settings.Set, settings, clock, cancellationToken).ConfigureAwait(false);
        }

        var values = new Dictionary<string, string?>();
        if (settings.LocalWorkers is { } n)
        {
            values["Worker:Concurrency"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var config = EngineHost.Configuration(settings.Config, values);
        var postgres = EngineHost.UsesPostgres(config);
        var workers = settings.LocalWorkers ?? (int.TryParse(config["Worker:Concurrency"], out var c) ? c : 4);
        if (workers < 0 || (workers == 0 && !postgres))
        {
            throw new PipelinesException("--local-workers must be at least 1 without PostgreSQL: nothing else would run the tasks", retryHelps: false);
        }

        using var host = EngineHost.Build(config, worker: workers > 0, settings.Verbose ? LogLevel.Information : LogLevel.Warning);
        var store = host.Services.GetRequiredService<IRunStore>();

        // The start makes the PostgreSQL tables (Hosting/SchemaSetup) before anything is submitted.
        await host.StartAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var submitted = await host.Services.GetRequiredService<RunSubmitter>()
                .SubmitAsync(yaml, settings.File, dir, settings.Set, cancellationToken, canary).ConfigureAwait(false);
            RunIndex.Record(submitted.RunId, submitted.OutputUri);
            if (submitted.CanaryRunId is { } canaryRunId)
            {
                RunIndex.Record(canaryRunId, submitted.OutputUri.TrimEnd('/') + "/" + CanaryLink.Folder);
            }
            foreach (var w in submitted.Warnings.Where(w => !w.IsNote))
            {
                Console.Error.WriteLine($"{settings.File}: warning: {w.Text}");
            }

            Console.WriteLine($"run {submitted.RunId}: {submitted.Tasks} task(s) over {submitted.Inputs} input file(s), {(postgres ? "PostgreSQL" : "embedded")} mode, {(workers > 0 ? $"{workers} local worker(s)" : "remote workers")}");
            foreach (var note in submitted.Warnings.Where(w => w.IsNote))
            {
                Console.WriteLine($"note: {note.Text}");
            }

            Console.WriteLine($"output: {submitted.OutputUri}");
            if (submitted.CanaryRunId is not null)
            {
                Console.WriteLine($"canary: {submitted.CanaryTasks} task(s) again with {canary!.Step}={canary.Image}, as run {submitted.CanaryRunId} (in {CanaryLink.Folder})");
            }

            // With no local worker, say so when no worker at all is connected: the run would wait for good.
            Func<int>? liveWorkers = workers == 0 ? () => host.Services.GetRequiredService<Hangfire.JobStorage>().GetMonitoringApi().Servers().Count : null;
            var run = await WaitAsync(store, submitted.RunId, liveWorkers, cancellationToken).ConfigureAwait(false);
            var stores = host.Services.GetRequiredService<ObjectStoreFactory>();
            await PrintSummaryAsync(store, stores, run, clock.Elapsed, cancellationToken).ConfigureAwait(false);
            var code = run.State == RunState.Succeeded ? Cli.Ok : Cli.Failed;
            if (submitted.CanaryRunId is { } candidate)
            {
                var canaryRun = await WaitAsync(store, candidate, liveWorkers, cancellationToken).ConfigureAwait(false);
                var (diff, summary) = await CanaryOutcome.ReadAsync(stores.Open(run.OutputUri), cancellationToken).ConfigureAwait(false);
                code = CanaryOutcome.Print(code, diff, summary, canaryRun.State, canaryRun.Error);
            }

            return code;
        }
        finally
        {
            await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static async Task<RunRecord> WaitAsync(IRunStore store, string runId, Func<int>? liveWorkers, CancellationToken ct)
    {
        var follow = new RunFollower(store, runId, liveWorkers);
        if (Cli.Interactive)
        {
            RunRecord? result = null;
            await AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async ctx =>
                {
                    var bar = ctx.AddTask("tasks");
                    while (true)
                    {
                        if (await follow.PollAsync(ct).ConfigureAwait(false) is var (run, counts))
                        {
                            bar.MaxValue = Math.Max(1, counts.Total);
                            bar.Value = counts.Ended;
                            bar.Description = $"{counts.Ended}/{counts.Total} ended, {counts.Running} running, {counts.Failed} failed" + (run.State == RunState.Gathering ? ", gathering" : "");
                            if (run.State.IsTerminal())
                            {
                                result = run;
                                return;
                            }
                        }

                        await Task.Delay(follow.Delay(250), ct).ConfigureAwait(false);
                    }
                }).ConfigureAwait(false);
            return result!;
        }

        string? last = null;
        var lastPrint = Stopwatch.StartNew();
        while (true)
        {
            if (await follow.PollAsync(ct).ConfigureAwait(false) is var (run, counts))
            {
                if (run.State.IsTerminal())
                {
                    return run;
                }

                var line = $"{counts.Ended}/{counts.Total} tasks ended ({counts.Succeeded} succeeded, {counts.Cached} cached, {counts.Failed} failed), {counts.Running} running" + (run.State == RunState.Gathering ? ", gathering" : "");
                if (line != last && lastPrint.Elapsed > TimeSpan.FromSeconds(2))
                {
                    Console.WriteLine(line);
                    last = line;
                    lastPrint.Restart();
                }
            }

            await Task.Delay(follow.Delay(100), ct).ConfigureAwait(false);
        }
    }

    internal static async Task PrintSummaryAsync(IRunStore store, ObjectStoreFactory stores, RunRecord run, TimeSpan wall, CancellationToken ct)
    {
        var counts = await store.CountTasksAsync(run.RunId, ct).ConfigureAwait(false);
        Console.WriteLine($"run {run.RunId} {run.State.Name()} in {wall.TotalSeconds:0.0}s");
        Console.WriteLine($"  tasks:   {counts.Total} ({counts.Succeeded} succeeded, {counts.Cached} cached, {counts.Failed} failed, {counts.Cancelled} cancelled{(counts.Split > 0 ? $", {counts.Split} split" : "")})");
        var output = stores.Open(run.OutputUri);
        try
        {
            var summary = await RunSummary.ReadAsync(output, ct).ConfigureAwait(false);
            RunJsonNotes.PrintResults(summary);
            RunJsonNotes.Print(summary);
        }
        catch (ObjectNotFoundException)
        {
            Console.WriteLine("  results: none (run.json was not written)");
        }

        if (run.Error is not null)
        {
            Console.WriteLine($"  error:   {run.Error}");
        }

        if (counts.Failed > 0)
        {
            var failed = (await store.GetTasksAsync(run.RunId, ct).ConfigureAwait(false)).Where(t => t.State == TaskState.Failed).ToList();
            foreach (var t in failed.Take(5))
            {
                var first = (t.Error ?? "").Split('\n')[0];
                Console.WriteLine($"  failed:  task {t.Index} ({t.TaskId}, {string.Join(" ", t.Inputs.Take(2).Select(i => i.Key))}{(t.Inputs.Count > 2 ? " ..." : "")}): {first}");
            }

            if (failed.Count > 5)
            {
                Console.WriteLine($"  failed:  ... and {failed.Count - 5} more (see provenance/tasks.parquet)");
            }
        }

        Console.WriteLine($"  output:  {run.OutputUri}");
    }
}
