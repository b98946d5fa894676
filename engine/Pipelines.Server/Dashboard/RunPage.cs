using System.Globalization;
using Hangfire;
using Hangfire.Dashboard;
using Hangfire.Dashboard.Pages;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Gather;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Server.Access;
using Pipelines.Server.Api;
using Pipelines.Storage;
using static Pipelines.Server.Dashboard.RunHtml;

namespace Pipelines.Server.Dashboard;

/// <summary>One run on the dashboard: its summary, result files, and its tasks with their logs.</summary>
internal sealed class RunPage(string runId) : RazorPage
{
    private const int PageSize = 100;

    public override void Execute()
    {
        Layout = new LayoutPage("Run " + runId);
        var http = Context.GetHttpContext();
        var ct = http.RequestAborted;
        var store = TenantContext.Of(http).Runs;

        // Hangfire renders pages synchronously; the run store is asynchronous.
        var run = store.GetRunAsync(runId, ct).GetAwaiter().GetResult();
        WriteLiteral($"<div class=\"row\"><div class=\"col-md-12\"><h1 class=\"page-header\">Run <code>{E(runId)}</code></h1>");
        if (run is null)
        {
            // Another tenant's run reads as a missing one, status and page alike (docs/tenants.md).
            http.Response.StatusCode = StatusCodes.Status404NotFound;
            WriteLiteral($"<div class=\"alert alert-warning\">There is no run {E(runId)}. <a href=\"{E(Url.To("/runs"))}\">All runs</a></div></div></div>");
            return;
        }

        var counts = store.CountTasksAsync(runId, ct).GetAwaiter().GetResult();
        var steps = RunDefinition.FromJson(run.DefinitionJson).Workflow.Steps.Select(s => s.Name).ToList();
        WriteLiteral($"""
            <dl class="dl-horizontal">
            <dt>Workflow</dt><dd>{E(run.WorkflowName)}</dd>
            <dt>State</dt><dd>{StateLabel(run.State.Name())}</dd>
            <dt>Progress</dt><dd style="max-width: 40em">{Progress(counts)}</dd>
            <dt>Tasks</dt><dd>{Counts(counts)}</dd>
            <dt>Created</dt><dd>{Time(run.CreatedAt)}</dd>
            <dt>Finished</dt><dd>{Time(run.FinishedAt)}</dd>
            <dt>Duration</dt><dd>{RunDuration(run)}</dd>
            <dt>Output</dt><dd><code>{E(run.OutputUri)}</code></dd>
            {(run.StopReason is null ? "" : $"<dt>Stopped</dt><dd>{E(run.StopReason)}</dd>")}
            {(run.Error is null ? "" : $"<dt>Error</dt><dd>{E(run.Error)}</dd>")}
            </dl>
            """);
        if (!run.State.IsTerminal() && counts.Held > 0)
        {
            // Why tasks wait: the first held tasks' own words (which worker, what it saw).
            var held = store.QueryTasksAsync(runId, new TaskQuery(TaskState.Queued, 0, 200), ct).GetAwaiter().GetResult().Items
                .Where(t => t.Hold is not null).Take(3).ToList();
            WriteLiteral($"<div class=\"alert alert-info\" id=\"held\"><strong>{E(RunCatalog.Held(counts))}</strong><ul>"
                + string.Concat(held.Select(t => $"<li>task {t.Index}: held by {E(t.Hold!.Worker)} since {Time(t.Hold.Since)}: {E(t.Hold.Detail)}</li>"))
                + "</ul>Held tasks start when a worker has room: an idle machine, or a worker with another Harvest:Policy.</div>");
        }

        if (!run.State.IsTerminal())
        {
            var running = store.QueryTasksAsync(runId, new TaskQuery(TaskState.Running, 0, 100), ct).GetAwaiter().GetResult().Items;
            var ended = store.QueryTasksAsync(runId, new TaskQuery(TaskState.Succeeded, 0, 100), ct).GetAwaiter().GetResult().Items;
            var servers = http.RequestServices.GetRequiredService<JobStorage>().GetMonitoringApi().Servers().Count;
            var signs = StuckSigns.Of(run, counts, servers, running, ended, DateTimeOffset.UtcNow);
            if (signs.Count > 0)
            {
                WriteLiteral($"<div class=\"alert alert-warning\" id=\"stuck\"><strong>This run may be stuck:</strong><ul>{string.Concat(signs.Select(x => $"<li>{E(x)}</li>"))}</ul></div>");
            }
        }

        if (!run.State.IsTerminal() && Access.Access.CanChange(http.User))
        {
            WriteLiteral($"""
                <p><button class="btn btn-sm btn-danger" id="cancel-run" onclick="if (confirm('Cancel run {E(runId)}?')) fetch('{E(RunsApi.RunUrl(runId))}/cancel', {"{"}method: 'POST'{"}"}).then(function () {"{"} location.reload(); {"}"});">Cancel run</button></p>
                """);
        }

        var summary = run.State.IsTerminal() ? Summary(http.RequestServices.GetRequiredService<ObjectStoreFactory>(), run, ct) : null;
        WriteUsage(TenantContext.Of(http), run, summary, ct);
        WriteResults(run, summary);
        WriteTimeline(store, run, ct);
        WriteTasks(store, run, steps, ct);
        WriteLiteral("</div></div>");
        if (!run.State.IsTerminal())
        {
            WriteLiteral(Refresh);
        }
    }

    /// <summary>The run's run.json, or null when it ended without one (a failed gather).</summary>
    private static RunSummary? Summary(ObjectStoreFactory stores, RunRecord run, CancellationToken ct)
    {
        try
        {
            return RunSummary.ReadAsync(stores.Open(run.OutputUri), ct).GetAwaiter().GetResult();
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// What the run used and cost, in report.html's table (UsageTable, one rule): once it has ended, its
    /// run.json's block; while it goes on (or when it ended without run.json), the ledger's records so far.
    /// </summary>
    private void WriteUsage(TenantContext tenant, RunRecord run, RunSummary? summary, CancellationToken ct)
    {
        var usage = summary?.Usage ?? tenant.RunUsageAsync(run, ct).GetAwaiter().GetResult();
        var source = summary?.Usage is not null ? "from run.json" : run.State.IsTerminal() ? "from the usage ledger (the run has no run.json)" : "so far, from the usage ledger: deliveries that have ended";
        WriteLiteral($"<h3 id=\"usage-title\">Usage and cost <small>{E(source)}</small></h3>");
        WriteLiteral(UsageTable.ToHtml(usage, "table table-condensed"));
    }

    private void WriteResults(RunRecord run, RunSummary? summary)
    {
        WriteLiteral("<h3 id=\"results\">Results</h3>");
        var files = new List<string>();
        files.AddRange(summary?.Results.Values.SelectMany(r => r.Files) ?? []);

        if (!run.State.IsTerminal())
        {
            WriteLiteral("<p class=\"text-muted\">The result tables are written when every task has ended.</p>");
            return;
        }

        WriteLiteral($"<p><a class=\"btn btn-sm btn-default\" id=\"run-report\" href=\"{E(RunsApi.FileUrl(run.RunId, RunLayout.Report))}\">Report: timeline, time and memory per step, slowest and failed tasks</a></p>");
        files.AddRange([RunLayout.Report, RunLayout.RunJson, RunLayout.ProvenanceTasks, RunLayout.RoCrate, RunLayout.WorkflowYaml]);
        WriteLiteral("<ul>");
        foreach (var f in files)
        {
            WriteLiteral($"<li><a href=\"{E(RunsApi.FileUrl(run.RunId, f))}\">{E(f)}</a></li>");
        }

        WriteLiteral("</ul>");
    }

    /// <summary>
    /// The same timeline as report.html's, per task (its last attempt) from the run store, a page
    /// of tasks at a time; it bounds itself (<see cref="Timeline.MaxBars"/>), so a large run costs no more memory.
    /// </summary>
    private void WriteTimeline(IRunStore store, RunRecord run, CancellationToken ct)
    {
        var timeline = new Timeline(run.CreatedAt.UtcDateTime, (run.FinishedAt ?? DateTimeOffset.UtcNow).UtcDateTime);
        for (var from = 0; ; from += 500)
        {
            var page = store.QueryTasksAsync(run.RunId, new TaskQuery(null, from, 500), ct).GetAwaiter().GetResult();
            foreach (var t in page.Items)
            {
                if (t.StartedAt is { } a && t.Worker is not null)
                {
                    var end = t.FinishedAt ?? DateTimeOffset.UtcNow;
                    timeline.Add(new TimelineBar(t.Worker, t.Index, t.TaskId, "task", t.Attempts, t.State.Name(), a.UtcDateTime, (end < a ? a : end).UtcDateTime));
                }
            }

            if (from + page.Items.Count >= page.Total || page.Items.Count == 0)
            {
                break;
            }
        }

        WriteLiteral("<h3 id=\"timeline-title\">Timeline</h3>");
        WriteLiteral(timeline.Count == 0 ? "<p class=\"text-muted\">No task has started yet.</p>" : timeline.ToSvg("timeline"));
    }

    private void WriteTasks(IRunStore store, RunRecord run, List<string> steps, CancellationToken ct)
    {
        var state = Enum.TryParse<TaskState>(Query("state"), ignoreCase: true, out var s) ? s : (TaskState?)null;
        var from = int.TryParse(Query("from"), NumberStyles.None, CultureInfo.InvariantCulture, out var f) ? f : 0;
        var page = store.QueryTasksAsync(run.RunId, new TaskQuery(state, from, PageSize), ct).GetAwaiter().GetResult();

        // The page's tasks' attempts that waited for their image (provenance's image_load): the rows of this page only.
        var loads = store.GetProvenanceAsync(run.RunId, page.Items.Select(t => t.Index).ToList(), ct).GetAwaiter().GetResult()
            .Where(r => r.ImageLoad is not null).ToLookup(r => r.TaskIndex);
        var self = Url.To("/runs/" + run.RunId);
        WriteLiteral("<h3 id=\"tasks\">Tasks</h3><ul class=\"nav nav-pills\" style=\"margin-bottom: 1em\">");
        WriteLiteral($"<li class=\"{(state is null ? "active" : "")}\"><a href=\"{E(self)}#tasks\">all</a></li>");
        foreach (var st in Enum.GetValues<TaskState>())
        {
            WriteLiteral($"<li class=\"{(st == state ? "active" : "")}\"><a href=\"{E(self)}?state={st.Name()}#tasks\">{st.Name()}</a></li>");
        }

        WriteLiteral("""
            </ul><div class="table-responsive"><table class="table table-condensed table-hover tasks-table">
            <thead><tr><th>#</th><th>Task id</th><th>State</th><th>Inputs</th><th>Attempts</th><th>Exit</th><th>Worker</th><th>Duration</th><th>Image load</th><th>Logs</th><th>Error</th></tr></thead><tbody>
            """);
        foreach (var t in page.Items)
        {
            var inputs = string.Join(", ", t.Inputs.Take(3).Select(i => E(i.Key))) + (t.Inputs.Count > 3 ? $" and {t.Inputs.Count - 3} more" : "");
            var logs = t.Attempts > 0 || t.State is TaskState.Cached or TaskState.Succeeded or TaskState.Failed
                ? string.Join(" ", steps.Select(step => $"<a href=\"{E(RunsApi.FileUrl(run.RunId, RunLayout.TaskLog(t.TaskId, step)))}\">{E(step)}</a>"))
                : "";
            var duration = t.StartedAt is { } a && t.FinishedAt is { } b && b >= a ? Duration(b - a) : "";
            var error = t.Hold is { } hold ? $"held ({hold.Reason}) by {hold.Worker}: {hold.Detail}"
                : t.Error is null ? "" : (t.Error.Length > 160 ? t.Error[..160] + "..." : t.Error);
            WriteLiteral($"<tr><td>{t.Index}</td><td><code>{E(t.TaskId)}</code></td><td>{StateLabel(t.State.Name())}</td><td><small>{inputs}</small></td><td>{t.Attempts}</td><td>{t.ExitCode}</td><td><small>{E(t.Worker)}</small></td><td>{duration}</td><td class=\"image-load\">{ImageLoads(loads[t.Index])}</td><td>{logs}</td><td><small>{E(error)}</small></td></tr>");
        }

        WriteLiteral($"</tbody></table></div><p class=\"text-muted\">{(page.Total == 0 ? 0 : from + 1)}-{from + page.Items.Count} of {page.Total} tasks");
        var filter = state is null ? "" : "state=" + state.Value.Name() + "&";
        if (from > 0)
        {
            WriteLiteral($" · <a href=\"{E(self)}?{filter}from={Math.Max(0, from - PageSize)}#tasks\">previous</a>");
        }

        if (from + page.Items.Count < page.Total)
        {
            WriteLiteral($" · <a href=\"{E(self)}?{filter}from={from + PageSize}#tasks\">next</a>");
        }

        WriteLiteral("</p>");
    }

    /// <summary>A task's attempts that were not served by the image on their engine: what happened and the seconds, by step and attempt.</summary>
    private static string ImageLoads(IEnumerable<ProvenanceRow> rows) => string.Join("<br>", rows.Select(r =>
        $"<small title=\"{E(r.Step)} attempt {r.Attempt}\">{E(r.ImageLoad)}, {r.ImageLoadSeconds?.ToString("0.00", CultureInfo.InvariantCulture)} s</small>"));
}
