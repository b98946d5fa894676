using Pipelines.Model;
using Pipelines.Runs;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines validate FILE`: exit 0, or 2 with every problem.</summary>
public sealed class ValidateCommand : AsyncCommand<WorkflowSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, WorkflowSettings settings, CancellationToken cancellationToken)
    {
        var (yaml, dir) = await WorkflowFile.ReadAsync(settings.File, cancellationToken).ConfigureAwait(false);
        var w = WorkflowParser.Parse(yaml, settings.File, dir, settings.Set);
        WorkflowFile.PrintWarnings(settings.File, w);
        if (await OneShotAdvice.ForLocalInputAsync(w, cancellationToken).ConfigureAwait(false) is { } advice)
        {
            Console.Error.WriteLine($"{settings.File}: warning: {advice}");
        }

        Console.WriteLine($"{settings.File}: valid workflow '{w.Name}': {w.Steps.Count} step(s), {w.Gather.Count} gather table(s)");
        Console.WriteLine($"  input:  {w.Input.Uri}");
        Console.WriteLine($"  output: {w.Output.Uri}");
        return Cli.Ok;
    }
}

internal static class WorkflowFile
{
    public static void PrintWarnings(string file, Workflow workflow)
    {
        foreach (var w in workflow.Warnings)
        {
            Console.Error.WriteLine($"{file}: warning: {w}");
        }
    }

    public static async Task<(string Yaml, string Directory)> ReadAsync(string file, CancellationToken ct)
    {
        if (!File.Exists(file))
        {
            var what = Directory.Exists(file) ? "is a folder, not a workflow file" : "does not exist";
            throw new WorkflowInvalidException(file, [new WorkflowProblem("(file)", $"{file} {what}", 0, 0)]);
        }

        var full = Path.GetFullPath(file);
        return (await File.ReadAllTextAsync(full, ct).ConfigureAwait(false), Path.GetDirectoryName(full)!);
    }
}
