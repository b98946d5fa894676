using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Hosting;
using Pipelines.Planning;
using Pipelines.Runs;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines plan FILE`: validate, pin images, list and plan, and show the tasks, without running or writing anything.</summary>
public sealed class PlanCommand : AsyncCommand<WorkflowSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, WorkflowSettings settings, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var (yaml, dir) = await WorkflowFile.ReadAsync(settings.File, cancellationToken).ConfigureAwait(false);
        var config = EngineHost.Configuration(settings.Config);
        using var host = EngineHost.Build(config, worker: false);
        var preview = await host.Services.GetRequiredService<RunSubmitter>()
            .PreviewAsync(yaml, settings.File, dir, settings.Set, cancellationToken).ConfigureAwait(false);
        foreach (var w in preview.Workflow.Warnings)
        {
            Console.Error.WriteLine($"{settings.File}: warning: {w}");
        }

        // Tasks are counted as they stream by; only the first few are kept to show.
        var first = new List<PlannedTask>();
        await foreach (var t in preview.Tasks.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (first.Count < 5)
            {
                first.Add(t);
            }
        }

        var counter = preview.Counter;
        Console.WriteLine($"{preview.Workflow.Name}: {counter.Tasks} task(s) over {counter.Selected} of {counter.Listed} listed file(s)"
            + (preview.FilesUngrouped > 0 ? $", {preview.FilesUngrouped} left out by group_by" : ""));
        if (preview.Scope.Note is { } note)
        {
            Console.WriteLine($"note: {note}");
        }

        foreach (var t in first)
        {
            Console.WriteLine($"  task {t.Index} {t.TaskId}: {t.Inputs.Count} input(s), {string.Join(" ", t.Inputs.Take(3).Select(i => i.Key))}{(t.Inputs.Count > 3 ? " ..." : "")}");
        }

        if (counter.Tasks > first.Count)
        {
            Console.WriteLine($"  ... and {counter.Tasks - first.Count} more");
        }

        foreach (var (image, digest) in preview.ImageDigests)
        {
            Console.WriteLine($"  image {image} = {digest}");
        }

        Console.WriteLine($"planned in {clock.Elapsed.TotalSeconds:0.00}s, peak memory {Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024)} MiB");
        return Cli.Ok;
    }
}
