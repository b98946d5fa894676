using System.Globalization;
using System.Text;

namespace Pipelines.Lineage;

/// <summary>A lineage answer as the CLI prints it: the run, the row (for a table row), then each step, producer first, with its inputs.</summary>
public static class LineageText
{
    /// <summary>Inputs listed per step, at most; the JSON has them all.</summary>
    public const int InputsShown = 50;

    public static string Format(LineageAnswer a)
    {
        var text = new StringBuilder();
        var run = a.Run;
        text.AppendLine(CultureInfo.InvariantCulture, $"{a.Key}: {a.Kind} of run {run.RunId} ({run.Workflow}, {run.Status})");
        text.AppendLine(CultureInfo.InvariantCulture, $"  run folder: {run.Folder} (read from the {run.Source})");
        if (a.Row is { } row)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  row {row.Number} of {row.Rows}: {string.Join(", ", row.Cells.Where(c => !c.Key.StartsWith('_')).Select(c => $"{c.Key}={c.Value}"))}");
            text.AppendLine(CultureInfo.InvariantCulture, $"  task:        {row.TaskId}");
            text.AppendLine(row.SourceFile is { } f
                ? $"  source file: {f.Key}{Sized(f)}"
                : "  source file: the task's inputs together (the row names none of them alone)");
            if (row.Part is not null)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  read from:   {row.Part}");
            }
        }

        if (a.Table is { } table)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  rows: {(table.Rows is { } r ? r.ToString(CultureInfo.InvariantCulture) : "not recorded (no run.json)")}");
            foreach (var (step, byStatus) in table.Attempts)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  step {step}: {string.Join(", ", byStatus.Select(s => $"{s.Value} {s.Key}"))} attempt(s)");
            }

            foreach (var (image, digest) in table.Images)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  image: {image} @ {digest}");
            }

            text.AppendLine("  name a row with --row N or --key VALUE to see the task and the input file it comes from");
        }

        for (var i = 0; i < a.Steps.Count; i++)
        {
            var s = a.Steps[i];
            var heading = i == 0 ? (a.Kind == "task log" ? "attempt" : "produced by") : "before it,";
            text.AppendLine(CultureInfo.InvariantCulture, $"{heading} task {s.TaskIndex} ({s.TaskId}), step {s.Step}, attempt {s.Attempt}: {s.Status}{(s.ExitCode is { } code ? $" (exit {code})" : "")}");
            text.AppendLine(CultureInfo.InvariantCulture, $"  image:    {s.Image} @ {s.ImageDigest}");
            if (s.ImageLoad is not null)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  image load: not on the worker's engine: {s.ImageLoad}, {s.ImageLoadSeconds?.ToString("0.00", CultureInfo.InvariantCulture)} s");
            }

            text.AppendLine(CultureInfo.InvariantCulture, $"  command:  {string.Join(' ', s.Command.Select(Quote))}");
            text.AppendLine(CultureInfo.InvariantCulture, $"  worker:   {s.Worker}");
            text.AppendLine(CultureInfo.InvariantCulture, $"  started:  {Time(s.StartedAt)}, finished {Time(s.FinishedAt)} ({(s.FinishedAt - s.StartedAt).TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s)");
            if (s.CachedFrom is not null)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  cached:   reused from run {s.CachedFrom}, where it ran");
            }

            if (s.Log is not null)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  log:      {s.Log}");
            }

            if (s.Error is not null)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  error:    {s.Error.ReplaceLineEndings(" ")}");
            }

            text.AppendLine(CultureInfo.InvariantCulture, $"  inputs ({s.Inputs.Count}):");
            foreach (var f in s.Inputs.Take(InputsShown))
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"    {f.Key}{Sized(f)}");
            }

            if (s.Inputs.Count > InputsShown)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"    and {s.Inputs.Count - InputsShown} more (--json lists them all)");
            }
        }

        return text.ToString();
    }

    private static string Sized(LineageFile f) =>
        (f.Size is { } size ? $"  {size.ToString(CultureInfo.InvariantCulture)} bytes" : "") + (f.Sha256 is { Length: > 0 } h ? $"  sha256:{h}" : "");

    private static string Time(DateTime t) => t.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture) + " UTC";

    private static string Quote(string arg) => arg.Length > 0 && arg.All(c => char.IsLetterOrDigit(c) || "/._-=:,+@".Contains(c, StringComparison.Ordinal)) ? arg : "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
