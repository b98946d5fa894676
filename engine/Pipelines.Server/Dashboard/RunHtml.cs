using System.Globalization;
using System.Net;
using System.Text;
using Pipelines.RunStore;

namespace Pipelines.Server.Dashboard;

/// <summary>Small pieces of HTML shared by the Runs pages, in Hangfire's own Bootstrap 3 classes.</summary>
internal static class RunHtml
{
    public static string E(string? text) => WebUtility.HtmlEncode(text ?? "");

    public static string Time(DateTimeOffset? t) => t is { } v ? v.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC" : "";

    public static string Duration(TimeSpan d) => d.TotalSeconds < 60
        ? d.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s"
        : d.TotalMinutes < 60
            ? $"{(int)d.TotalMinutes} min {d.Seconds} s"
            : $"{(int)d.TotalHours} h {d.Minutes} min";

    public static string RunDuration(RunRecord run) => Duration((run.FinishedAt ?? DateTimeOffset.UtcNow) - run.CreatedAt);

    public static string StateLabel(string state) => state switch
    {
        "succeeded" or "cached" => $"<span class=\"label label-success\">{state}</span>",
        "failed" => $"<span class=\"label label-danger\">{state}</span>",
        "cancelled" => $"<span class=\"label label-warning\">{state}</span>",
        "running" or "gathering" => $"<span class=\"label label-info\">{state}</span>",
        _ => $"<span class=\"label label-default\">{E(state)}</span>",
    };

    /// <summary>A stacked bar: done (green), failed (red), cancelled (amber), running (blue, moving), queued (empty).</summary>
    public static string Progress(TaskCounts c)
    {
        var total = Math.Max(1, c.Total);
        string Bar(int n, string kind, string what) => n == 0 ? "" :
            $"<div class=\"progress-bar progress-bar-{kind}\" role=\"progressbar\" style=\"width: {(100.0 * n / total).ToString("0.###", CultureInfo.InvariantCulture)}%\" title=\"{n} {what}\"></div>";
        var percent = 100 * c.Ended / total;
        return $"<div class=\"progress\" style=\"margin-bottom: 2px\" title=\"{c.Ended} of {c.Total} ended\">"
            + Bar(c.Succeeded + c.Cached, "success", "succeeded or cached")
            + Bar(c.Failed, "danger", "failed")
            + Bar(c.Cancelled, "warning", "cancelled")
            + Bar(c.Split, "warning", "split into tasks of their own")
            + Bar(c.Running, "info progress-bar-striped active", "running")
            + $"</div><small class=\"text-muted\">{percent}% ({c.Ended}/{c.Total})</small>";
    }

    public static string Counts(TaskCounts c)
    {
        var sb = new StringBuilder();
        void Add(int n, string state)
        {
            if (n > 0)
            {
                sb.Append(StateLabel(state).Replace($">{state}<", $">{n} {state}<", StringComparison.Ordinal)).Append(' ');
            }
        }

        Add(c.Queued, "queued");
        if (c.Held > 0)
        {
            // Of the queued: held back, with why on hover (the run page says more).
            sb.Append(CultureInfo.InvariantCulture, $"<span class=\"label label-default held\" title=\"{E(Runs.RunCatalog.Held(c))}\">{c.Held} held</span> ");
        }

        Add(c.Running, "running");
        Add(c.Succeeded, "succeeded");
        Add(c.Cached, "cached");
        Add(c.Failed, "failed");
        Add(c.Cancelled, "cancelled");
        Add(c.Split, "split");
        return sb.ToString();
    }

    /// <summary>Reloads the page while something is still moving.</summary>
    public const string Refresh = "<script>setTimeout(function () { location.reload(); }, 3000);</script>";
}
