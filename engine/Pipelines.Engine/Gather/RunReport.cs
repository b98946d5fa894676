using System.Globalization;
using System.Net;
using System.Text;
using Pipelines.Containers;
using Pipelines.Runs;
using Pipelines.RunStore;

namespace Pipelines.Gather;

/// <summary>
/// report.html in the run folder: one page that needs no network (inline SVG and CSS, no
/// script): the run's summary, a timeline of tasks per worker (every task: a step taken from the
/// cache is a grey bar where the worker took it), duration per step (and CPU, memory and I/O
/// per step when tasks.parquet has the resource columns) over the attempts that ran, the slowest
/// of them and the failed ones with links to their logs, the tasks taken from the cache, and
/// the attempts that waited for their image to be loaded or pulled onto a worker's engine. The provenance is read as a stream (a
/// tasks.parquet, or the rows a gather holds) and only
/// what the page shows is kept: a sum per step, the <see cref="Slowest"/> slowest and the first
/// <see cref="MaxFailed"/> failed attempts, cached steps and image loads, and a <see cref="Timeline"/> (itself bounded).
/// </summary>
internal sealed class RunReport
{
    public const int Slowest = 20;
    public const int MaxFailed = 50;

    private readonly RunSummary _summary;
    private readonly IReadOnlyList<string> _stepOrder;
    private readonly Timeline _timeline;
    private readonly Dictionary<string, StepStats> _steps = new(StringComparer.Ordinal);
    private readonly PriorityQueue<Attempt, double> _slowest = new();
    private readonly List<Attempt> _failed = [];
    private readonly List<Attempt> _loads = [];
    private readonly List<Attempt> _cached = [];
    private long _failedCount;
    private long _cachedCount;
    private long _loadCount;
    private long _rows;

    public RunReport(RunSummary summary, IReadOnlyList<string> stepOrder)
    {
        _summary = summary;
        _stepOrder = stepOrder;
        _timeline = new Timeline(summary.CreatedAt.UtcDateTime, summary.FinishedAt.UtcDateTime);
    }

    /// <summary>Writes the report of a run from its tasks.parquet (a seekable stream) and run.json's summary.</summary>
    public static async Task<byte[]> BuildAsync(RunSummary summary, IReadOnlyList<string> stepOrder, Stream tasksParquet, CancellationToken cancellationToken)
    {
        var report = new RunReport(summary, stepOrder);
        await foreach (var entry in ProvenanceFile.ReadAsync(tasksParquet, cancellationToken).ConfigureAwait(false))
        {
            report.Add(entry);
        }

        return Encoding.UTF8.GetBytes(report.ToHtml());
    }

    /// <summary>
    /// The report of a run from the provenance rows its gather holds: the same page as from the
    /// tasks.parquet written from those rows, without reading that file back.
    /// </summary>
    public static byte[] Build(RunSummary summary, IReadOnlyList<string> stepOrder, IEnumerable<ProvenanceRow> rows)
    {
        var report = new RunReport(summary, stepOrder);
        foreach (var row in rows)
        {
            report.Add(new ProvenanceEntry(row, new ResourceUse(row.CpuSeconds, row.PeakMemoryBytes, row.ReadBytes, row.WrittenBytes, row.WallSeconds)));
        }

        return Encoding.UTF8.GetBytes(report.ToHtml());
    }

    public void Add(ProvenanceEntry entry)
    {
        var row = entry.Row;
        _rows++;
        var start = DateTime.SpecifyKind(row.StartedAt, DateTimeKind.Utc);
        var end = DateTime.SpecifyKind(row.FinishedAt, DateTimeKind.Utc);
        var seconds = entry.Resources.WallSeconds ?? Math.Max(0, (end - start).TotalSeconds);
        if (!_steps.TryGetValue(row.Step, out var stats))
        {
            stats = new StepStats();
            _steps[row.Step] = stats;
        }

        var attempt = new Attempt(row.TaskIndex, row.TaskId, row.Step, row.Attempt, row.Status, row.Worker, seconds, row.ExitCode, row.Error, row.Log, row.ImageLoad, row.ImageLoadSeconds, row.CachedFrom);
        if (row.Status == "cached")
        {
            // A cached step did not run here: it has no duration or resource use of this run's,
            // and is no attempt; it is drawn (grey) where its worker took it from the cache.
            stats.Cached++;
            _cachedCount++;
            _timeline.Add(new TimelineBar(row.Worker, row.TaskIndex, row.TaskId, row.Step, row.Attempt, row.Status, start, end));
            if (_cached.Count < MaxFailed)
            {
                _cached.Add(attempt);
            }
        }
        else
        {
            stats.Attempts++;
            stats.Duration.Add(seconds);
            stats.Cpu.Add(entry.Resources.CpuSeconds);
            stats.Memory.Add(entry.Resources.PeakMemoryBytes);
            stats.Read.Add(entry.Resources.ReadBytes);
            stats.Written.Add(entry.Resources.WrittenBytes);
            stats.ImageLoad.Add(row.ImageLoadSeconds);
            _timeline.Add(new TimelineBar(row.Worker, row.TaskIndex, row.TaskId, row.Step, row.Attempt, row.Status, start, end));
            _slowest.Enqueue(attempt, seconds);
            if (_slowest.Count > Slowest)
            {
                _slowest.Dequeue();
            }
        }

        if (row.ImageLoadSeconds is not null)
        {
            _loadCount++;
            if (_loads.Count < MaxFailed)
            {
                _loads.Add(attempt);
            }
        }

        if (row.Status == "failed")
        {
            _failedCount++;
            if (_failed.Count < MaxFailed)
            {
                _failed.Add(attempt);
            }
        }
    }

    public string ToHtml()
    {
        var s = _summary;
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $"""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
            <title>{E(s.Workflow)} run {E(s.RunId)}: report</title>
            <style>
            body {"{"} font: 14px/1.4 sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; padding: 0 1em {"}"}
            h1 {"{"} font-size: 1.5em {"}"} h2 {"{"} font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd {"}"}
            table {"{"} border-collapse: collapse {"}"} td, th {"{"} padding: 2px 8px; text-align: left; vertical-align: top {"}"}
            tr:nth-child(even) td {"{"} background: #f7f7f7 {"}"} .num {"{"} text-align: right {"}"}
            .status-succeeded {"{"} color: #2e7d32 {"}"} .status-failed {"{"} color: #c62828 {"}"} .status-cancelled {"{"} color: #ef6c00 {"}"}
            code {"{"} font-size: 0.9em {"}"} .note {"{"} color: #666 {"}"} svg {"{"} display: block; margin: 0.5em 0 {"}"}
            </style></head><body>
            <h1>{E(s.Workflow)} run <code>{E(s.RunId)}</code>: <span class="status-{E(s.Status)}" id="run-status">{E(s.Status)}</span></h1>
            <table id="summary">
            <tr><th>Created</th><td>{Time(s.CreatedAt)}</td></tr>
            <tr><th>Finished</th><td>{Time(s.FinishedAt)} ({N(s.DurationSeconds)} s)</td></tr>
            <tr><th>Tasks</th><td>{s.Counts.Tasks} ({s.Counts.Succeeded} succeeded, {s.Counts.Cached} cached, {s.Counts.Failed} failed, {s.Counts.Cancelled} cancelled{(s.Counts.Split > 0 ? $", {s.Counts.Split} split" : "")}) over {s.Counts.Inputs} input file(s)</td></tr>
            <tr><th>Steps run</th><td id="steps-run">{_rows - _cachedCount} step attempt(s) ran, {_cachedCount} step(s) taken from the cache ({_rows} row(s) in provenance/tasks.parquet)</td></tr>
            <tr><th>Input</th><td><code>{E(s.InputUri)}</code></td></tr>
            <tr><th>Output</th><td><code>{E(s.OutputUri)}</code></td></tr>
            <tr><th>Engine</th><td>{E(s.Engine.Name)} {E(s.Engine.Version)}</td></tr>
            """);
        if (s.Error is not null)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><th>Error</th><td>{E(s.Error)}</td></tr>");
        }

        foreach (var (name, table) in s.Results)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><th>Result {E(name)}</th><td>{table.Rows} row(s): {string.Join(", ", table.Files.Select(f => $"<a href=\"{A(f)}\">{E(f)}</a>"))}</td></tr>");
        }

        foreach (var (image, digest) in s.Images)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><th>Image</th><td><code>{E(image)}</code> <code class=\"note\">{E(digest)}</code></td></tr>");
        }

        html.Append(CultureInfo.InvariantCulture, $"""
            </table>
            <p class="note"><a href="{A(RunLayout.RunJson)}">run.json</a> · <a href="{A(RunLayout.ProvenanceTasks)}">provenance/tasks.parquet</a> · <a href="{A(RunLayout.RoCrate)}">RO-Crate</a> · <a href="{A(RunLayout.WorkflowYaml)}">workflow.yaml</a></p>
            """);
        foreach (var p in s.Problems.Concat(s.Warnings).Take(20))
        {
            html.Append(CultureInfo.InvariantCulture, $"<p class=\"note\">{E(p)}</p>");
        }

        if (s.Usage is { } u)
        {
            // What the run used and cost (run.json's usage block), wasted work apart, as HTCondor shows good and bad put apart.
            html.Append("<h2>Usage and cost</h2>").Append(UsageTable.ToHtml(u));
        }

        html.Append("<h2 id=\"timeline-title\">Timeline: task steps per worker</h2>");
        html.Append(_timeline.ToSvg("timeline"));

        var steps = _stepOrder.Where(_steps.ContainsKey).Concat(_steps.Keys.Where(k => !_stepOrder.Contains(k)).Order(StringComparer.Ordinal)).ToList();
        html.Append("<h2>Duration per step</h2>");
        html.Append(Chart("chart-duration", steps, st => st.Duration, "s", v => N(v)));
        html.Append("<table><tr><th>step</th><th class=\"num\">attempts</th><th class=\"num\">cached</th><th class=\"num\">total s</th><th class=\"num\">mean s</th><th class=\"num\">max s</th></tr>");
        foreach (var step in steps)
        {
            var st = _steps[step];
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(step)}</td><td class=\"num\">{st.Attempts}</td><td class=\"num\">{st.Cached}</td><td class=\"num\">{N(st.Duration.Sum)}</td><td class=\"num\">{N(st.Duration.Mean)}</td><td class=\"num\">{N(st.Duration.Max)}</td></tr>");
        }

        html.Append("</table>");
        if (_steps.Values.Any(st => st.Cpu.Count > 0))
        {
            html.Append("<h2>CPU time per step</h2>").Append(Chart("chart-cpu", steps, st => st.Cpu, "s", v => N(v)));
        }

        if (_steps.Values.Any(st => st.Memory.Count > 0))
        {
            html.Append("<h2>Peak memory per step</h2>").Append(Chart("chart-memory", steps, st => st.Memory, "", Bytes));
        }

        if (_steps.Values.Any(st => st.Read.Count > 0 || st.Written.Count > 0))
        {
            html.Append("<h2>Bytes read per step</h2>").Append(Chart("chart-read", steps, st => st.Read, "", Bytes));
            html.Append("<h2>Bytes written per step</h2>").Append(Chart("chart-written", steps, st => st.Written, "", Bytes));
        }

        var slowest = new List<Attempt>();
        while (_slowest.TryDequeue(out var a, out _))
        {
            slowest.Add(a);
        }

        slowest.Reverse();
        html.Append(CultureInfo.InvariantCulture, $"<h2>Slowest {slowest.Count} of {_rows - _cachedCount} step attempt(s) that ran</h2><table id=\"slowest\"><tr><th>task</th><th>step</th><th>attempt</th><th>status</th><th>worker</th><th class=\"num\">seconds</th><th>log</th></tr>");
        foreach (var a in slowest)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{a.TaskIndex} <code>{E(a.TaskId)}</code></td><td>{E(a.Step)}</td><td>{a.Number}</td><td class=\"status-{E(a.Status)}\">{E(a.Status)}</td><td>{E(a.Worker)}</td><td class=\"num\">{N(a.Seconds)}</td><td>{LogLink(a)}</td></tr>");
        }

        html.Append("</table>");
        html.Append(CultureInfo.InvariantCulture, $"<h2>Failed step attempts: {_failedCount}</h2>");
        if (_failedCount > 0)
        {
            html.Append("<table id=\"failed\"><tr><th>task</th><th>step</th><th>attempt</th><th>exit</th><th>error</th><th>log</th></tr>");
            foreach (var a in _failed)
            {
                var error = a.Error is { Length: > 300 } text ? text[..300] + "…" : a.Error;
                html.Append(CultureInfo.InvariantCulture, $"<tr><td>{a.TaskIndex} <code>{E(a.TaskId)}</code></td><td>{E(a.Step)}</td><td>{a.Number}</td><td>{a.ExitCode}</td><td>{E(error)}</td><td>{LogLink(a)}</td></tr>");
            }

            html.Append("</table>");
            if (_failedCount > _failed.Count)
            {
                html.Append(CultureInfo.InvariantCulture, $"<p class=\"note\">and {_failedCount - _failed.Count} more: every one is in provenance/tasks.parquet (status failed).</p>");
            }
        }

        if (_cachedCount > 0)
        {
            // Named here as well as drawn: a fully cached run's report names its tasks.
            html.Append(CultureInfo.InvariantCulture, $"<h2>Taken from the cache: {_cachedCount} step(s)</h2>");
            html.Append("<table id=\"cached\"><tr><th>task</th><th>step</th><th>from run</th><th>worker</th><th>log</th></tr>");
            foreach (var a in _cached)
            {
                html.Append(CultureInfo.InvariantCulture, $"<tr><td>{a.TaskIndex} <code>{E(a.TaskId)}</code></td><td>{E(a.Step)}</td><td><code>{E(a.CachedFrom)}</code></td><td>{E(a.Worker)}</td><td>{LogLink(a)}</td></tr>");
            }

            html.Append("</table>");
            if (_cachedCount > _cached.Count)
            {
                html.Append(CultureInfo.InvariantCulture, $"<p class=\"note\">and {_cachedCount - _cached.Count} more: every one is in provenance/tasks.parquet (status cached) and on the timeline.</p>");
            }
        }

        if (_loadCount > 0)
        {
            // provenance/tasks.parquet's image_load and image_load_seconds: an attempt whose worker's engine lacked its image.
            html.Append(CultureInfo.InvariantCulture, $"<h2>Image loads: {_loadCount} step attempt(s) waited for their image, {N(_steps.Values.Sum(st => st.ImageLoad.Sum))} s in all</h2>");
            html.Append("<table id=\"image-loads\"><tr><th>task</th><th>step</th><th>attempt</th><th>worker</th><th>image</th><th class=\"num\">seconds</th><th>log</th></tr>");
            foreach (var a in _loads)
            {
                html.Append(CultureInfo.InvariantCulture, $"<tr><td>{a.TaskIndex} <code>{E(a.TaskId)}</code></td><td>{E(a.Step)}</td><td>{a.Number}</td><td>{E(a.Worker)}</td><td>{E(a.ImageLoad)}</td><td class=\"num\">{N(a.ImageSeconds ?? 0)}</td><td>{LogLink(a)}</td></tr>");
            }

            html.Append("</table>");
            if (_loadCount > _loads.Count)
            {
                html.Append(CultureInfo.InvariantCulture, $"<p class=\"note\">and {_loadCount - _loads.Count} more: every one is in provenance/tasks.parquet (image_load_seconds).</p>");
            }
        }

        html.Append("</body></html>\n");
        return html.ToString();
    }

    /// <summary>A bar per step: the mean (dark) over the maximum (light), both labelled.</summary>
    private string Chart(string id, IReadOnlyList<string> steps, Func<StepStats, Stat> metric, string unit, Func<double, string> format)
    {
        const int width = 1000, left = 160, barHeight = 22;
        var shown = steps.Where(st => metric(_steps[st]).Count > 0).ToList();
        var most = Math.Max(1e-12, shown.Select(st => metric(_steps[st]).Max).DefaultIfEmpty(0).Max());
        var height = 16 + (shown.Count * (barHeight + 8)) + 4;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg id=\"{id}\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" viewBox=\"0 0 {width} {height}\" role=\"img\" style=\"font: 11px sans-serif\">");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{left}\" y=\"11\">mean (dark) and maximum (light) per step attempt{(unit.Length > 0 ? ", " + unit : "")}</text>");
        var y = 16;
        foreach (var step in shown)
        {
            var m = metric(_steps[step]);
            var scale = (width - left - 250) / most;
            svg.Append(CultureInfo.InvariantCulture, $"<g class=\"step\" data-step=\"{E(step)}\"><text x=\"{left - 6}\" y=\"{y + 15}\" text-anchor=\"end\">{E(step)}</text>");
            svg.Append(CultureInfo.InvariantCulture, $"<rect class=\"max\" x=\"{left}\" y=\"{y}\" width=\"{F(Math.Max(1, m.Max * scale))}\" height=\"{barHeight}\" fill=\"#a9c6ef\"><title>max {E(format(m.Max))}</title></rect>");
            svg.Append(CultureInfo.InvariantCulture, $"<rect class=\"mean\" x=\"{left}\" y=\"{y + 5}\" width=\"{F(Math.Max(1, m.Mean * scale))}\" height=\"{barHeight - 10}\" fill=\"#2f6fc4\"><title>mean {E(format(m.Mean))} over {m.Count}</title></rect>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(left + Math.Max(1, m.Max * scale) + 6)}\" y=\"{y + 15}\">{E(format(m.Mean))} mean, {E(format(m.Max))} max ({m.Count})</text></g>");
            y += barHeight + 8;
        }

        svg.Append("</svg>");
        return svg.ToString();
    }

    private static string LogLink(Attempt a) => a.Log is null ? "" : $"<a href=\"{A(a.Log)}\">{E(a.Step)}.log</a>";

    internal static string Bytes(double b) => b switch
    {
        >= 1 << 30 => (b / (1 << 30)).ToString("0.##", CultureInfo.InvariantCulture) + " GiB",
        >= 1 << 20 => (b / (1 << 20)).ToString("0.##", CultureInfo.InvariantCulture) + " MiB",
        >= 1 << 10 => (b / (1 << 10)).ToString("0.##", CultureInfo.InvariantCulture) + " KiB",
        _ => b.ToString("0", CultureInfo.InvariantCulture) + " B",
    };

    private static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture) + " UTC";

    internal static string N(double v) => v.ToString(v >= 100 ? "0" : "0.###", CultureInfo.InvariantCulture);

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    private static string E(string? text) => WebUtility.HtmlEncode(text ?? "");

    /// <summary>A link to a key of the run folder, relative to report.html (which is at its root).</summary>
    private static string A(string key) => E(string.Join('/', key.Split('/').Select(Uri.EscapeDataString)));

    private sealed record Attempt(int TaskIndex, string TaskId, string Step, int Number, string Status, string Worker, double Seconds, long? ExitCode, string? Error, string? Log, string? ImageLoad, double? ImageSeconds, string? CachedFrom);

    private sealed class StepStats
    {
        public long Attempts { get; set; }

        public long Cached { get; set; }

        public Stat Duration { get; } = new();

        public Stat Cpu { get; } = new();

        public Stat Memory { get; } = new();

        public Stat Read { get; } = new();

        public Stat Written { get; } = new();

        public Stat ImageLoad { get; } = new();
    }

    /// <summary>Count, sum and maximum of the values seen (nulls are not counted).</summary>
    private sealed class Stat
    {
        public long Count { get; private set; }

        public double Sum { get; private set; }

        public double Max { get; private set; }

        public double Mean => Count == 0 ? 0 : Sum / Count;

        public void Add(double? value)
        {
            if (value is { } v)
            {
                Count++;
                Sum += v;
                Max = Math.Max(Max, v);
            }
        }
    }
}
