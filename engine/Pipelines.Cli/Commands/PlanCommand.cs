using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Hosting;
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
        var prepared = await host.Services.GetRequiredService<RunSubmitter>()
            .PrepareAsync(yaml, settings.File, dir, settings.Set, cancellationToken).ConfigureAwait(false);
        foreach (var w in prepared.Workflow.Warnings)
        {
            Console.Error.WriteLine($"{settings.File}: warning: {w}");
        }

        var plan = prepared.Plan;
        Console.WriteLine($"{prepared.Workflow.Name}: {plan.Tasks.Count} task(s) over {plan.FilesSelected} of {plan.FilesListed} listed file(s)"
            + (plan.FilesUngrouped > 0 ? $", {plan.FilesUngrouped} left out by group_by" : ""));
        foreach (var t in plan.Tasks.Take(5))
        {
            Console.WriteLine($"  task {t.Index} {t.TaskId}: {t.Inputs.Count} input(s), {string.Join(" ", t.Inputs.Take(3).Select(i => i.Key))}{(t.Inputs.Count > 3 ? " ..." : "")}");
        }

        if (plan.Tasks.Count > 5)
        {
            Console.WriteLine($"  ... and {plan.Tasks.Count - 5} more");
        }

        foreach (var (image, digest) in prepared.ImageDigests)
        {
            Console.WriteLine($"  image {image} = {digest}");
        }

        Console.WriteLine($"planned in {clock.Elapsed.TotalSeconds:0.00}s, peak memory {Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024)} MiB");
        return Cli.Ok;
    }
}
