using System.Globalization;
using System.Net;
using System.Text;

namespace Pipelines.Gather;

/// <summary>One bar of a timeline: a task attempt's step (or a whole task) on a worker, from start to end.</summary>
public sealed record TimelineBar(string Worker, int TaskIndex, string TaskId, string Step, int Attempt, string Status, DateTime Start, DateTime End);

/// <summary>
/// The tasks of a run per worker over time, drawn as an inline SVG (no script, no network), the
/// same on report.html and on the dashboard's run page. Bars are added one at a time; past
/// <see cref="MaxBars"/> the timeline keeps, per worker, how busy each of <see cref="Bins"/>
/// slices of the run was instead of the bars, so memory is bounded by the workers, not the tasks.
/// </summary>
public sealed class Timeline(DateTime start, DateTime end)
{
    /// <summary>Bars kept and drawn one by one, at most.</summary>
    public const int MaxBars = 2_000;

    /// <summary>Slices of the run's time a busy lane is drawn in, once there are more than <see cref="MaxBars"/> bars.</summary>
    public const int Bins = 400;

    private const int Width = 1000;
    private const int Left = 160;
    private const int LaneHeight = 14;

    private readonly List<TimelineBar> _bars = [];
    private readonly SortedDictionary<string, double[]> _busy = new(StringComparer.Ordinal);
    private readonly DateTime _start = start;
    private readonly DateTime _end = end > start ? end : start.AddSeconds(1);

    /// <summary>Bars added in all (drawn or counted into slices).</summary>
    public long Count { get; private set; }

    public void Add(TimelineBar bar)
    {
        Count++;
        if (_busy.Count == 0 && _bars.Count < MaxBars)
        {
            _bars.Add(bar);
            return;
        }

        if (_bars.Count > 0)
        {
            foreach (var b in _bars)
            {
                AddBusy(b);
            }

            _bars.Clear();
        }

        AddBusy(bar);
    }

    /// <summary>The SVG: a lane per worker (as many rows as it ran steps at once), time along the bottom.</summary>
    public string ToSvg(string id)
    {
        var svg = new StringBuilder();
        var seconds = (_end - _start).TotalSeconds;
        double X(DateTime t) => Left + ((t - _start).TotalSeconds / seconds * (Width - Left - 10));
        var lanes = new List<(string Worker, int Rows, List<(TimelineBar Bar, int Row)> Bars)>();
        if (_busy.Count == 0)
        {
            foreach (var worker in _bars.GroupBy(b => b.Worker).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                // Each bar takes the first row of its worker that is free at its start.
                var rowEnds = new List<DateTime>();
                var placed = new List<(TimelineBar, int)>();
                foreach (var b in worker.OrderBy(b => b.Start).ThenBy(b => b.TaskIndex))
                {
                    var row = rowEnds.FindIndex(e => e <= b.Start);
                    if (row < 0)
                    {
                        row = rowEnds.Count;
                        rowEnds.Add(b.End);
                    }
                    else
                    {
                        rowEnds[row] = b.End;
                    }

                    placed.Add((b, row));
                }

                lanes.Add((worker.Key, Math.Max(1, rowEnds.Count), placed));
            }
        }
        else
        {
            lanes.AddRange(_busy.Keys.Select(w => (w, 2, new List<(TimelineBar, int)>())));
        }

        var height = 20 + lanes.Sum(l => (l.Rows * LaneHeight) + 6) + 24;
        svg.Append(CultureInfo.InvariantCulture, $"<svg id=\"{E(id)}\" class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" viewBox=\"0 0 {Width} {height}\" role=\"img\" aria-label=\"tasks per worker over time\" style=\"font: 11px sans-serif\">");
        var y = 20;
        foreach (var lane in lanes)
        {
            var laneHeight = lane.Rows * LaneHeight;
            svg.Append(CultureInfo.InvariantCulture, $"<g class=\"lane\" data-worker=\"{E(lane.Worker)}\"><rect x=\"{Left}\" y=\"{y}\" width=\"{Width - Left - 10}\" height=\"{laneHeight}\" fill=\"#f4f4f4\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{y + (laneHeight / 2) + 4}\" text-anchor=\"end\">{E(Short(lane.Worker))}</text>");
            foreach (var (b, row) in lane.Bars)
            {
                var x = X(b.Start);
                var w = Math.Max(1.5, X(b.End) - x);
                var title = $"task {b.TaskIndex} ({b.TaskId}) {b.Step} attempt {b.Attempt}: {b.Status}, {(b.End - b.Start).TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s";
                svg.Append(CultureInfo.InvariantCulture, $"<rect class=\"bar {StatusClass(b.Status)}\" data-task=\"{b.TaskIndex}\" x=\"{F(x)}\" y=\"{y + (row * LaneHeight) + 1}\" width=\"{F(w)}\" height=\"{LaneHeight - 2}\" fill=\"{Color(b.Status)}\"><title>{E(title)}</title></rect>");
            }

            if (_busy.TryGetValue(lane.Worker, out var busy))
            {
                var slice = (double)(Width - Left - 10) / Bins;
                var sliceSeconds = seconds / Bins;
                var most = Math.Max(1e-9, busy.Max());
                for (var i = 0; i < Bins; i++)
                {
                    if (busy[i] > 0)
                    {
                        var title = $"{(busy[i] / sliceSeconds).ToString("0.#", CultureInfo.InvariantCulture)} steps at once on average";
                        svg.Append(CultureInfo.InvariantCulture, $"<rect class=\"bar busy\" x=\"{F(Left + (i * slice))}\" y=\"{y}\" width=\"{F(slice)}\" height=\"{laneHeight}\" fill=\"#3a7bd5\" fill-opacity=\"{F(0.15 + (0.85 * busy[i] / most))}\"><title>{E(title)}</title></rect>");
                    }
                }
            }

            svg.Append("</g>");
            y += laneHeight + 6;
        }

        for (var i = 0; i <= 5; i++)
        {
            var x = Left + (i * (Width - Left - 10) / 5.0);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(x)}\" y1=\"14\" x2=\"{F(x)}\" y2=\"{y}\" stroke=\"#ccc\" stroke-dasharray=\"2,3\"/><text x=\"{F(x)}\" y=\"{y + 14}\" text-anchor=\"{(i == 5 ? "end" : "middle")}\">{Seconds(seconds * i / 5)}</text>");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left}\" y=\"11\">{(_busy.Count == 0 ? $"{Count} step(s) of task attempts" : $"{Count} steps of task attempts, drawn as how busy each worker was")}</text>");
        svg.Append("</svg>");
        return svg.ToString();
    }

    private void AddBusy(TimelineBar bar)
    {
        if (!_busy.TryGetValue(bar.Worker, out var busy))
        {
            busy = new double[Bins];
            _busy[bar.Worker] = busy;
        }

        var sliceSeconds = (_end - _start).TotalSeconds / Bins;
        var from = Math.Max(0, (bar.Start - _start).TotalSeconds);
        var to = Math.Min((_end - _start).TotalSeconds, (bar.End - _start).TotalSeconds);
        for (var i = (int)Math.Min(Bins - 1, from / sliceSeconds); i < Bins && i * sliceSeconds < to; i++)
        {
            var lo = Math.Max(from, i * sliceSeconds);
            var hi = Math.Min(to, (i + 1) * sliceSeconds);
            if (hi > lo)
            {
                busy[i] += hi - lo;
            }
        }
    }

    /// <summary>The CSS class of a status: ok, failed, cached or other.</summary>
    public static string StatusClass(string status) => status switch
    {
        "succeeded" => "ok",
        "failed" => "failed",
        "cached" => "cached",
        _ => "other",
    };

    private static string Color(string status) => status switch
    {
        "succeeded" => "#4caf50",
        "failed" => "#e53935",
        "cached" => "#9e9e9e",
        _ => "#ffa000",
    };

    private static string Short(string worker) => worker.Length <= 24 ? worker : worker[..23] + "…";

    private static string Seconds(double s) => s < 120
        ? s.ToString("0.#", CultureInfo.InvariantCulture) + " s"
        : s < 7200 ? (s / 60).ToString("0.#", CultureInfo.InvariantCulture) + " min" : (s / 3600).ToString("0.#", CultureInfo.InvariantCulture) + " h";

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
