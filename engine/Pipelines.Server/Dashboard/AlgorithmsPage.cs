using System.Globalization;
using Hangfire.Dashboard;
using Hangfire.Dashboard.Pages;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Algorithms;
using Pipelines.Server.Access;
using static Pipelines.Server.Dashboard.RunHtml;

namespace Pipelines.Server.Dashboard;

/// <summary>
/// The dashboard's Algorithms page (docs/algorithms.md): each algorithm's versions with their
/// digests and the channels that name them, its latest channel change, and the latest loads of
/// images onto workers' engines (what <c>GET /api/algorithms/loads</c> returns: digest, worker,
/// source, seconds, bytes, when), each load named by the versions that have its digest. Names are
/// per tenant: an admin key over every tenant sees two tenants' algorithms of one name on rows keyed
/// by tenant and name, under a Tenant column (the Functions page's rule,
/// <see cref="TenantContext.SeesTenants"/>), and a load's versions named with their tenant; a
/// tenant's key sees its own only, with no such column.
/// </summary>
internal sealed class AlgorithmsPage : RazorPage
{
    /// <summary>How many of the latest loads the page lists: as many as the API's.</summary>
    public const int Loads = 100;

    public override void Execute()
    {
        Layout = new LayoutPage("Algorithms");
        var http = Context.GetHttpContext();
        var tenant = TenantContext.Of(http);
        var service = tenant.Algorithms;
        var catalog = tenant.Catalog;
        WriteLiteral("<div class=\"row\"><div class=\"col-md-12\"><h1 class=\"page-header\">Algorithms</h1>");

        // Hangfire renders pages synchronously; the catalog is asynchronous.
        var algorithms = service.ListAsync(null, http.RequestAborted).GetAwaiter().GetResult();
        var loads = catalog.LoadsAsync(null, Loads, http.RequestAborted).GetAwaiter().GetResult();
        var tenants = tenant.SeesTenants;
        WriteVersions(algorithms, tenants);
        WriteLoads(algorithms, loads, tenants);
        WriteLiteral("</div></div>");
        WriteLiteral(Refresh.Replace("3000", "5000", StringComparison.Ordinal));
    }

    private void WriteVersions(IReadOnlyList<AlgorithmSummary> algorithms, bool tenants)
    {
        if (algorithms.Count == 0)
        {
            WriteLiteral("<div class=\"alert alert-info\">No algorithms yet. Push one with <code>pipelines algorithm push NAME VERSION IMAGE</code> or <code>POST /api/algorithms/{name}/versions/{version}</code>.</div>");
            return;
        }

        WriteLiteral($"""
            <h3 id="versions">Versions</h3>
            <div class="table-responsive"><table class="table table-hover algorithms-table">
            <thead><tr>{(tenants ? "<th>Tenant</th>" : "")}<th>Algorithm</th><th>Version</th><th>Channel</th><th>Digest</th><th>Size</th><th>Pushed</th><th>By</th><th>Notes</th></tr></thead><tbody>
            """);
        foreach (var a in algorithms)
        {
            var last = a.Events.FirstOrDefault();
            if (last is not null)
            {
                WriteLiteral($"""
                    <tr class="release{(last.Action == ChannelEvent.RollbackAction ? " danger" : "")}" data-algorithm="{E(a.Name)}" data-tenant="{E(a.Tenant.Value)}"><td colspan="{(tenants ? 9 : 8)}">
                    <code>{E(a.Name)}</code>: last change {Time(last.At)}: {E(last.Action)} {E(last.Version ?? "")}{(last.Percent is { } p ? $" ({p}%)" : "")} by {E(last.By)}{(last.Reason is null ? "" : ": " + E(last.Reason))}
                    </td></tr>
                    """);
            }

            foreach (var v in a.Versions)
            {
                var channels = string.Join(" ", a.Channels.Where(c => c.Version == v.Version).Select(Channel));
                WriteLiteral($"""
                    <tr data-algorithm="{E(a.Name)}" data-version="{E(v.Version)}" data-tenant="{E(a.Tenant.Value)}">
                    {(tenants ? $"<td class=\"tenant\"><code>{E(a.Tenant.Value)}</code></td>" : "")}<td><code>{E(a.Name)}</code></td>
                    <td><code>{E(v.Version)}</code></td>
                    <td class="channels">{channels}</td>
                    <td class="digest"><code>{E(v.Digest)}</code></td>
                    <td>{Size(v.SizeBytes)}</td>
                    <td>{Time(v.PushedAt)}</td>
                    <td>{E(v.PushedBy)}</td>
                    <td><small>{E(v.Notes)}</small></td>
                    </tr>
                    """);
            }
        }

        WriteLiteral("</tbody></table></div>");
    }

    private void WriteLoads(IReadOnlyList<AlgorithmSummary> algorithms, IReadOnlyList<ImageLoad> loads, bool tenants)
    {
        WriteLiteral("<h3 id=\"loads\">Image loads onto workers</h3>");
        if (loads.Count == 0)
        {
            WriteLiteral("<p class=\"text-muted\">No worker has loaded or pulled an image yet: every image a task or function needed was on its engine.</p>");
            return;
        }

        WriteLiteral("""
            <div class="table-responsive"><table class="table table-condensed table-hover loads-table">
            <thead><tr><th>When</th><th>Worker</th><th>Digest</th><th>Versions</th><th>Source</th><th>Seconds</th><th>Bytes</th></tr></thead><tbody>
            """);
        foreach (var l in loads)
        {
            var versions = string.Join(", ", algorithms.SelectMany(a => a.Versions).Where(v => v.Digest == l.Digest).Select(v => $"<code>{(tenants ? E(v.Tenant.Value) + "/" : "")}{E(v.Name)}@{E(v.Version)}</code>"));
            WriteLiteral(string.Create(CultureInfo.InvariantCulture, $"""
                <tr data-digest="{E(l.Digest)}" data-worker="{E(l.Worker)}">
                <td>{Time(l.LoadedAt)}</td>
                <td><code>{E(l.Worker)}</code></td>
                <td><code>{E(l.Digest)}</code></td>
                <td>{versions}</td>
                <td><small>{E(l.Source)}</small></td>
                <td class="seconds">{l.Seconds:0.00}</td>
                <td class="bytes">{l.Bytes} ({Size(l.Bytes)})</td>
                </tr>
                """));
        }

        WriteLiteral($"</tbody></table></div><p class=\"text-muted\">The latest {Loads} loads (a load from the algorithm store or a pull from a registry, once per digest per worker process); each task's own wait is in its provenance (<code>image_load_seconds</code>).</p>");
    }

    private static string Channel(AlgorithmChannel c) => c.Channel switch
    {
        "stable" => "<span class=\"label label-success\">stable</span>",
        _ => $"<span class=\"label label-warning\">{E(c.Channel)} {(c.Shadow ? "shadow " : "")}{c.Percent}%</span>",
    };

    private static string Size(long bytes) => AlgorithmVersion.SizeText(bytes);
}
