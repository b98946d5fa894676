using Pipelines.Gather;

namespace Pipelines.Cli.Commands;

/// <summary>Prints what a run's run.json lists beyond its counts: the parts its gathers left out, and its warnings.</summary>
internal static class RunJsonNotes
{
    private const int Shown = 10;

    public static void Print(RunSummary summary)
    {
        Print(summary.Problems, "problem");
        Print(summary.Warnings, "warning");
    }

    /// <summary>Prints the tables the gathers wrote, a line each.</summary>
    public static void PrintResults(RunSummary summary)
    {
        foreach (var (name, table) in summary.Results)
        {
            Console.WriteLine($"  results: {name}: {table.Rows} rows gathered ({string.Join(", ", table.Files)})");
        }
    }

    private static void Print(IReadOnlyList<string> items, string label)
    {
        foreach (var item in items.Take(Shown))
        {
            Console.WriteLine($"  {label}: {item}");
        }

        if (items.Count > Shown)
        {
            Console.WriteLine($"  {label}: ... and {items.Count - Shown} more (see run.json)");
        }
    }
}
