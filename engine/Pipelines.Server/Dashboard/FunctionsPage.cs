using System.Globalization;
using Hangfire.Dashboard;
using Hangfire.Dashboard.Pages;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Functions;
using Pipelines.Server.Api;
using static Pipelines.Server.Dashboard.RunHtml;

namespace Pipelines.Server.Dashboard;

/// <summary>
/// The dashboard's Functions page: per function and version, requests, errors and p50/p95
/// latency over the retained invocations (computed in SQL), and the warm pool's containers.
/// </summary>
internal sealed class FunctionsPage : RazorPage
{
    public override void Execute()
    {
        Layout = new LayoutPage("Functions");
        var http = Context.GetHttpContext();
        var store = http.RequestServices.GetRequiredService<PostgresFunctionStore>();

        // Hangfire renders pages synchronously; the store is asynchronous.
        var functions = store.ListAsync(http.RequestAborted).GetAwaiter().GetResult();
        var stats = store.StatsAsync(null, http.RequestAborted).GetAwaiter().GetResult();

        WriteLiteral("<div class=\"row\"><div class=\"col-md-12\"><h1 class=\"page-header\">Functions</h1>");
        if (functions.Count == 0)
        {
            WriteLiteral("<div class=\"alert alert-info\">No functions yet. Deploy one with <code>pipelines function deploy FILE</code> or <code>POST /api/functions</code>.</div></div></div>");
            return;
        }

        WriteLiteral("""
            <div class="table-responsive"><table class="table table-hover functions-table">
            <thead><tr><th>Function</th><th>Version</th><th>Mode</th><th>Image</th><th>Requests</th><th>Errors</th><th>p50</th><th>p95</th><th>Warm containers</th><th>Last request</th></tr></thead><tbody>
            """);
        foreach (var f in functions)
        {
            var versions = store.VersionsAsync(f.Name, http.RequestAborted).GetAwaiter().GetResult();
            var warm = FunctionsApi.WarmOf(http.RequestServices, versions).ToDictionary(w => w.Version);
            var shown = versions.Where(v => v.Version == f.Version || stats.Any(s => s.Function == f.Name && s.Version == v.Version) || warm.ContainsKey(v.Version));
            foreach (var v in shown)
            {
                var s = stats.FirstOrDefault(x => x.Function == f.Name && x.Version == v.Version);
                var w = warm.GetValueOrDefault(v.Version);
                WriteLiteral($"""
                    <tr data-function="{E(f.Name)}" data-version="{v.Version}">
                    <td><a href="{E(FunctionsApi.FunctionUrl(f.Name))}"><code>{E(f.Name)}</code></a></td>
                    <td>{v.Version}{(v.Version == f.Version ? " <span class=\"label label-success\">current</span>" : "")}</td>
                    <td>{E(v.Spec.Mode.ToString().ToLowerInvariant())}</td>
                    <td title="{E(v.ImageDigest)}">{E(v.Spec.Image)}</td>
                    <td class="requests">{s?.Requests ?? 0}</td>
                    <td class="errors">{(s is { Errors: > 0 } ? $"<span class=\"label label-danger\">{s.Errors}</span>" : "0")}</td>
                    <td class="p50">{Ms(s?.P50Ms)}</td>
                    <td class="p95">{Ms(s?.P95Ms)}</td>
                    <td class="warm">{(w is null ? "0" : $"{w.Warm} ({w.Busy} busy, {w.Starting} starting, {w.Waiting} waiting)")}</td>
                    <td>{Time(s?.Last)}</td>
                    </tr>
                    """);
            }
        }

        WriteLiteral("</tbody></table></div>");
        WriteLiteral("<p class=\"text-muted\">Figures over the invocations kept (Functions:KeepInvocations, Functions:KeepInvocationsFor); errors are every invocation that did not succeed.</p></div></div>");
        WriteLiteral(Refresh.Replace("3000", "5000", StringComparison.Ordinal));
    }

    private static string Ms(double? ms) => ms is { } v ? v.ToString("0.#", CultureInfo.InvariantCulture) + " ms" : "";
}
