using System.Globalization;
using Hangfire.Dashboard;
using Hangfire.Dashboard.Pages;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Algorithms;
using Pipelines.Functions;
using Pipelines.Server.Access;
using Pipelines.Server.Api;
using Pipelines.Tenancy;
using static Pipelines.Server.Dashboard.RunHtml;

namespace Pipelines.Server.Dashboard;

/// <summary>
/// The dashboard's Functions page: per function, version and algorithm version (shadow copies
/// apart), requests, errors, error rate and p50/p95 latency over the retained invocations
/// (computed in SQL), shadow comparisons, the warm pool's containers, and each gray release
/// with its latest change and reason. Names are per tenant: rows are keyed by tenant and name, so
/// an admin key over every tenant sees two tenants' functions of one name apart, with a Tenant column.
/// </summary>
internal sealed class FunctionsPage : RazorPage
{
    public override void Execute()
    {
        Layout = new LayoutPage("Functions");
        var http = Context.GetHttpContext();
        // A Hangfire page is made by Hangfire, not by the container: what it shows comes from the caller's tenant's view of the service.
        var tenant = TenantContext.Of(http);
        var service = tenant.Functions;
        var tenants = tenant.SeesTenants;
        var store = service.Store;

        // Hangfire renders pages synchronously; the store is asynchronous.
        var functions = store.ListAsync(http.RequestAborted).GetAwaiter().GetResult();
        var stats = store.StatsAsync(null, null, http.RequestAborted).GetAwaiter().GetResult();

        WriteLiteral("<div class=\"row\"><div class=\"col-md-12\"><h1 class=\"page-header\">Functions</h1>");
        if (functions.Count == 0)
        {
            WriteLiteral("<div class=\"alert alert-info\">No functions yet. Deploy one with <code>pipelines function deploy FILE</code> or <code>POST /api/functions</code>.</div></div></div>");
            return;
        }

        WriteLiteral($"""
            <div class="table-responsive"><table class="table table-hover functions-table">
            <thead><tr>{(tenants ? "<th>Tenant</th>" : "")}<th>Function</th><th>Version</th><th>Algorithm</th><th>Mode</th><th>Image</th><th>Requests</th><th>Errors</th><th>Error rate</th><th>p50</th><th>p95</th><th>Shadow: equal / different</th><th>Warm containers</th><th>Last request</th></tr></thead><tbody>
            """);
        foreach (var f in functions)
        {
            // Names are per tenant: an admin key over every tenant reads each function in its own tenant's view.
            var own = tenant.Scope.IsAll ? service.For(TenantScope.Of(f.Tenant)) : service;
            var mine = stats.Where(s => s.Tenant == f.Tenant && s.Function == f.Name).ToList();
            var versions = own.Store.VersionsAsync(f.Name, http.RequestAborted).GetAwaiter().GetResult();
            var warm = FunctionsApi.WarmOf(own, versions);
            var release = FunctionsApi.ReleaseOfAsync(own, f, http.RequestAborted).GetAwaiter().GetResult();
            if (release is not null)
            {
                WriteRelease(f, release, tenants);
            }

            var shown = versions.Where(v => v.Version == f.Version || mine.Any(s => s.Version == v.Version) || warm.Any(w => w.Version == v.Version));
            foreach (var v in shown)
            {
                // One row per algorithm version that served it (shadow copies apart), or one row when none did.
                var rows = mine.Where(x => x.Version == v.Version).Select(x => (x.AlgorithmVersion, x.Shadow, Stats: (InvocationStats?)x))
                    .Concat(warm.Where(w => w.Version == v.Version && !mine.Any(x => x.Version == v.Version && x.AlgorithmVersion == w.AlgorithmVersion))
                        .Select(w => (w.AlgorithmVersion, Shadow: false, Stats: (InvocationStats?)null)))
                    .ToList();
                if (rows.Count == 0)
                {
                    rows.Add((null, false, null));
                }

                foreach (var (algorithmVersion, shadow, s) in rows)
                {
                    var w = shadow ? null : warm.FirstOrDefault(x => x.Version == v.Version && x.AlgorithmVersion == algorithmVersion);
                    WriteLiteral($"""
                        <tr data-function="{E(f.Name)}" data-version="{v.Version}" data-algorithm-version="{E(algorithmVersion ?? "")}" data-shadow="{(shadow ? "true" : "false")}" data-tenant="{E(f.Tenant.Value)}">
                        {(tenants ? $"<td class=\"tenant\"><code>{E(f.Tenant.Value)}</code></td>" : "")}<td><a href="{E(Link(f, tenants))}"><code>{E(f.Name)}</code></a></td>
                        <td>{v.Version}{(v.Version == f.Version ? " <span class=\"label label-success\">current</span>" : "")}</td>
                        <td class="algorithm">{Algorithm(algorithmVersion, shadow, release)}</td>
                        <td>{E(v.Spec.Mode.ToString().ToLowerInvariant())}</td>
                        <td title="{E(v.ImageDigest)}">{E(v.Spec.Image)}</td>
                        <td class="requests">{s?.Requests ?? 0}</td>
                        <td class="errors">{(s is { Errors: > 0 } ? $"<span class=\"label label-danger\">{s.Errors}</span>" : "0")}</td>
                        <td class="error-rate">{Rate(s?.ErrorRate)}</td>
                        <td class="p50">{Ms(s?.P50Ms)}</td>
                        <td class="p95">{Ms(s?.P95Ms)}</td>
                        <td class="shadow">{(shadow && s is not null ? $"{s.Equal} / {s.Different}" : "")}</td>
                        <td class="warm">{(w is null ? "0" : $"{w.Warm} ({w.Busy} busy, {w.Starting} starting, {w.Waiting} waiting){(w.Held is null ? "" : $" <span class=\"label label-warning\" title=\"{E(w.Held)}\">held by quota</span>")}")}</td>
                        <td>{Time(s?.Last)}</td>
                        </tr>
                        """);
                }
            }
        }

        WriteLiteral("</tbody></table></div>");
        WriteLiteral("<p class=\"text-muted\">Figures over the invocations kept (Functions:KeepInvocations, Functions:KeepInvocationsFor); errors are every invocation that did not succeed.</p></div></div>");
        WriteLiteral(Refresh.Replace("3000", "5000", StringComparison.Ordinal));
    }

    /// <summary>The function's API address; over every tenant, naming its tenant (an admin key reaches a name only in a named tenant).</summary>
    private static string Link(FunctionVersion f, bool tenants) =>
        FunctionsApi.FunctionUrl(f.Name) + (tenants ? "?tenant=" + Uri.EscapeDataString(f.Tenant.Value) : "");

    private static string Ms(double? ms) => ms is { } v ? v.ToString("0.#", CultureInfo.InvariantCulture) + " ms" : "";

    private static string Rate(double? rate) => rate is { } v ? (v * 100).ToString("0.#", CultureInfo.InvariantCulture) + "%" : "";

    /// <summary>The algorithm version of a row, marked with the channel that names it now.</summary>
    private static string Algorithm(string? version, bool shadow, ReleaseView? release)
    {
        if (version is null)
        {
            return "";
        }

        var mark = shadow ? "<span class=\"label label-info\">shadow</span>"
            : release?.Stable == version ? "<span class=\"label label-success\">stable</span>"
            : release?.Canary == version ? "<span class=\"label label-warning\">canary</span>"
            : "";
        return $"<code>{E(version)}</code> {mark}";
    }

    /// <summary>A function's gray release above its rows: what it follows, the canary, and the latest change with its reason (a rollback's figures).</summary>
    private void WriteRelease(FunctionVersion f, ReleaseView r, bool tenants)
    {
        var function = f.Name;
        var canary = r.Canary is null ? "no canary" : r.Shadow ? $"shadow canary <code>{E(r.Canary)}</code> ({r.Percent}% copied)" : $"canary <code>{E(r.Canary)}</code> ({r.Percent}%)";
        var last = r.Events.FirstOrDefault();
        var change = last is null ? "" : $"; last change {Time(last.At)}: {E(last.Action)} {E(last.Version ?? "")} by {E(last.By)}{(last.Reason is null ? "" : ": " + E(last.Reason))}";
        WriteLiteral($"""
            <tr class="release{(last?.Action == ChannelEvent.RollbackAction ? " danger" : "")}" data-function="{E(function)}"><td colspan="{(tenants ? 14 : 13)}">
            <code>{E(function)}</code> follows <code>{E(r.Algorithm)}@stable</code>: stable <code>{E(r.Stable)}</code>, {canary}{change}
            </td></tr>
            """);
    }
}
