using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Hosting;
using Pipelines.Planning;
using Pipelines.Runs;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines plan FILE [--json]`: validate, pin images, list and plan, and show the tasks, without running or writing anything.</summary>
public sealed class PlanCommand : AsyncCommand<PlanCommand.Settings>
{
    public const string Schema = "pipelines.plan/1";

    public sealed class Settings : WorkflowSettings
    {
        [CommandOption("--json")]
        [Description("Print the plan as JSON (schema pipelines.plan/1, docs/cli.md): every task, written as it is planned.")]
        public bool Json { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
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

        if (settings.Json)
        {
            await WriteJsonAsync(preview, clock, cancellationToken).ConfigureAwait(false);
            return Cli.Ok;
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

    /// <summary>
    /// The plan as one JSON document, each task written as the plan streams it (memory does not
    /// grow with the tasks); the counts, known at the end, come after the tasks.
    /// </summary>
    private static async Task WriteJsonAsync(PlanPreview preview, Stopwatch clock, CancellationToken ct)
    {
        await using var stdout = Console.OpenStandardOutput();
        await using var json = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("schema", Schema);
        json.WriteString("workflow", preview.Workflow.Name);
        json.WriteStartArray("tasks");
        await foreach (var t in preview.Tasks.WithCancellation(ct).ConfigureAwait(false))
        {
            json.WriteStartObject();
            json.WriteNumber("index", t.Index);
            json.WriteString("task_id", t.TaskId);
            json.WriteStartArray("inputs");
            foreach (var i in t.Inputs)
            {
                json.WriteStartObject();
                json.WriteString("key", i.Key);
                json.WriteNumber("size", i.Size);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteStartObject("captures");
            foreach (var (name, value) in t.Captures)
            {
                json.WriteString(name, value);
            }

            json.WriteEndObject();
            json.WriteEndObject();
            if (json.BytesPending > 1 << 16)
            {
                await json.FlushAsync(ct).ConfigureAwait(false);
            }
        }

        json.WriteEndArray();
        var counter = preview.Counter;
        json.WriteNumber("task_count", counter.Tasks);
        json.WriteNumber("files_listed", counter.Listed);
        json.WriteNumber("files_selected", counter.Selected);
        json.WriteNumber("files_ungrouped", preview.FilesUngrouped);
        json.WriteStartObject("images");
        foreach (var (image, digest) in preview.ImageDigests)
        {
            json.WriteString(image, digest);
        }

        json.WriteEndObject();
        if (preview.Scope.Note is { } note)
        {
            json.WriteString("note", note);
        }
        else
        {
            json.WriteNull("note");
        }

        json.WriteStartArray("warnings");
        foreach (var w in preview.Workflow.Warnings)
        {
            json.WriteStringValue(w.ToString());
        }

        json.WriteEndArray();
        json.WriteNumber("planned_seconds", Math.Round(clock.Elapsed.TotalSeconds, 3));
        json.WriteEndObject();
        await json.FlushAsync(ct).ConfigureAwait(false);
        await stdout.WriteAsync("\n"u8.ToArray(), ct).ConfigureAwait(false);
    }
}
