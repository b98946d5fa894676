using System.Text.Json;

namespace Pipelines.Cli.Commands;

/// <summary>Prints what a run's run.json lists beyond its counts: the parts its gathers left out, and its warnings.</summary>
internal static class RunJsonNotes
{
    private const int Shown = 10;

    public static void Print(JsonElement runJson)
    {
        Print(runJson, "problems", "problem");
        Print(runJson, "warnings", "warning");
    }

    private static void Print(JsonElement runJson, string property, string label)
    {
        // Runs written before these lists existed have none.
        if (!runJson.TryGetProperty(property, out var list) || list.ValueKind != JsonValueKind.Array)
        {
            return;
        }

        var items = list.EnumerateArray().Select(e => e.GetString()).ToList();
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
