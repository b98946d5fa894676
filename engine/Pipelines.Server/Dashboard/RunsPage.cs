using System.Globalization;
using Hangfire;
using Hangfire.Dashboard;
using Hangfire.Dashboard.Pages;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Server.Access;
using Pipelines.Server.Api;
using static Pipelines.Server.Dashboard.RunHtml;

namespace Pipelines.Server.Dashboard;

/// <summary>
/// The dashboard's Runs page: every run, newest first, with progress, counts, duration and links.
/// An admin key over every tenant sees whose each run is in a Tenant column (the Functions page's rule,
/// <see cref="TenantContext.SeesTenants"/>); a tenant's key, whose runs are all its own, sees none.
/// </summary>
internal sealed class RunsPage : RazorPage
{
    private const int PageSize = 25;

    public override void Execute()
    {
        Layout = new LayoutPage("Runs");
        var http = Context.GetHttpContext();
        var tenant = TenantContext.Of(http);
        var store = tenant.Runs;
        var tenants = tenant.SeesTenants;
        var state = Enum.TryParse<RunState>(Query("state"), ignoreCase: true, out var s) ? s : (RunState?)null;
        var from = int.TryParse(Query("from"), NumberStyles.None, CultureInfo.InvariantCulture, out var f) ? f : 0;

        // Hangfire renders pages synchronously; the run store is asynchronous.
        var page = store.QueryRunsAsync(new RunQuery(State: state, Offset: from, Limit: PageSize), http.RequestAborted).GetAwaiter().GetResult();

        WriteLiteral("<div class=\"row\"><div class=\"col-md-12\"><h1 class=\"page-header\">Runs</h1>");
        WriteLiteral("<ul class=\"nav nav-pills\" style=\"margin-bottom: 1em\">");
        WriteLiteral(Filter(null, state));
        foreach (var st in Enum.GetValues<RunState>())
        {
            WriteLiteral(Filter(st, state));
        }

        WriteLiteral("</ul>");
        if (page.Items.Count == 0)
        {
            WriteLiteral("<div class=\"alert alert-info\">No runs yet. Submit one with <code>pipelines run FILE --server URL</code> or <code>POST /api/runs</code>.</div></div></div>");
            return;
        }

        WriteLiteral($"""
            <div class="table-responsive"><table class="table table-hover runs-table">
            <thead><tr>{(tenants ? "<th>Tenant</th>" : "")}<th>Run</th><th>Workflow</th><th>State</th><th style="width: 22%">Progress</th><th>Tasks</th><th>Created</th><th>Duration</th><th>Files</th></tr></thead><tbody>
            """);
        var moving = false;
        var servers = http.RequestServices.GetRequiredService<JobStorage>().GetMonitoringApi().Servers().Count;
        foreach (var run in page.Items)
        {
            var counts = store.CountTasksAsync(run.RunId, http.RequestAborted).GetAwaiter().GetResult();
            var stuck = StuckSigns.Of(run, counts, servers, [], [], DateTimeOffset.UtcNow);
            moving |= !run.State.IsTerminal();
            var runPage = Url.To("/runs/" + run.RunId);
            WriteLiteral($"""
                <tr data-run-id="{E(run.RunId)}" data-tenant="{E(run.Tenant.Value)}">
                {(tenants ? $"<td class=\"tenant\"><code>{E(run.Tenant.Value)}</code></td>" : "")}<td><a href="{E(runPage)}"><code>{E(run.RunId)}</code></a></td>
                <td>{E(run.WorkflowName)}</td>
                <td>{StateLabel(run.State.Name())}{(stuck.Count == 0 ? "" : $" <span class=\"label label-warning stuck\" title=\"{E(string.Join("; ", stuck))}\">stuck?</span>")}</td>
                <td>{Progress(counts)}</td>
                <td>{Counts(counts)}</td>
                <td>{Time(run.CreatedAt)}</td>
                <td>{RunDuration(run)}</td>
                <td><a href="{E(runPage)}">tasks</a> · <a href="{E(runPage)}?state=failed">failed logs</a> · <a href="{E(runPage)}#results">results</a> · <a href="{E(RunsApi.FileUrl(run.RunId, Pipelines.Runs.RunLayout.RunJson))}">run.json</a></td>
                </tr>
                """);
        }

        WriteLiteral("</tbody></table></div>");
        WriteLiteral($"<p class=\"text-muted\">{from + 1}-{from + page.Items.Count} of {page.Total} runs");
        var filter = state is null ? "" : "state=" + state.Value.Name() + "&";
        if (from > 0)
        {
            WriteLiteral($" · <a href=\"{E(Url.To("/runs"))}?{filter}from={Math.Max(0, from - PageSize)}\">newer</a>");
        }

        if (from + page.Items.Count < page.Total)
        {
            WriteLiteral($" · <a href=\"{E(Url.To("/runs"))}?{filter}from={from + PageSize}\">older</a>");
        }

        WriteLiteral("</p></div></div>");
        if (moving)
        {
            WriteLiteral(Refresh);
        }
    }

    private string Filter(RunState? which, RunState? current) =>
        $"<li role=\"presentation\" class=\"{(which == current ? "active" : "")}\"><a href=\"{E(Url.To("/runs"))}{(which is null ? "" : "?state=" + which.Value.Name())}\">{(which is null ? "all" : which.Value.Name())}</a></li>";
}
