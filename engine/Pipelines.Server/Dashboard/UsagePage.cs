using System.Globalization;
using System.Text;
using Hangfire.Dashboard;
using Hangfire.Dashboard.Pages;
using Microsoft.AspNetCore.Http;
using Pipelines.Runs;
using Pipelines.Server.Access;
using Pipelines.Server.Api;
using Pipelines.Usage;
using static Pipelines.Server.Dashboard.RunHtml;

namespace Pipelines.Server.Dashboard;

/// <summary>
/// The dashboard's Usage page (docs/tenants.md, Usage and cost): the caller's tenant's usage over a
/// period (?since=, default 30 days; an admin key: every tenant, or ?tenant=), a bar per day
/// (server-rendered SVG; CPU seconds or cost, good work and wasted work stacked), the totals by
/// tenant and kind priced by each tenant's sheet, and links to export the records. The figures are
/// GET /api/usage's (UsageApi.SummarizeAsync), so the page and the API cannot disagree.
/// </summary>
internal sealed class UsagePage : RazorPage
{
    /// <summary>Days drawn at most: a longer period shows its last days.</summary>
    internal const int MaxDays = 400;

    private const int ChartHeight = 180;

    public override void Execute()
    {
        Layout = new LayoutPage("Usage");
        var http = Context.GetHttpContext();
        var tenant = TenantContext.Of(http);
        var now = DateTimeOffset.UtcNow;
        var since = Query("since") is { Length: > 0 } s ? s : "30d";
        WriteLiteral("<div class=\"row\"><div class=\"col-md-12\"><h1 class=\"page-header\">Usage</h1>");
        DateTimeOffset from;
        try
        {
            from = RunCatalog.ParseSince(since, now)!.Value;
        }
        catch (RunCatalog.FilterException e)
        {
            http.Response.StatusCode = StatusCodes.Status400BadRequest;
            WriteLiteral($"<div class=\"alert alert-warning\" id=\"bad-query\">{E(e.Message)}</div></div></div>");
            return;
        }

        var summary = UsageApi.SummarizeAsync(tenant, new UsageQuery(From: from), http.RequestAborted).GetAwaiter().GetResult();
        var whose = tenant.Scope.Tenant is { } t ? $"tenant <strong>{E(t.Value)}</strong>" : "every tenant";
        WriteLiteral($"<p id=\"period\">Usage of {whose} since {Time(from)} ({E(since)}), by the day its work ended (UTC). "
            + "<a href=\"?since=7d\">7 days</a> · <a href=\"?since=30d\">30 days</a> · <a href=\"?since=90d\">90 days</a></p>");

        // Cost when one currency prices something; CPU seconds otherwise (or when asked: ?measure=cpu).
        var priced = summary.Totals is [{ Cost: > 0 }];
        var cost = Query("measure") switch { "cpu" => false, "cost" => summary.Totals.Count == 1, _ => priced };
        var unit = cost ? summary.Totals[0].Currency : "CPU s";
        WriteLiteral($"<h3 id=\"chart-title\">{(cost ? "Cost" : "CPU seconds")} per day <small>good work and wasted work (vacated, failed) stacked · "
            + $"<a href=\"?since={Uri.EscapeDataString(since)}&amp;measure={(cost ? "cpu" : "cost")}\">show {(cost ? "CPU seconds" : "cost")}</a></small></h3>");
        WriteLiteral(Chart(summary.Rows, from, now, cost, unit));
        WriteTotals(summary);
        WriteExports(tenant, from);
        WriteLiteral("</div></div>");
    }

    /// <summary>
    /// A bar per day from <paramref name="from"/>'s day to today's (the last <see cref="MaxDays"/>): good
    /// work below, wasted work on top. Each day is a <c>g.day</c> with its date and both figures as data.
    /// </summary>
    internal static string Chart(IReadOnlyList<UsageApi.UsageSummaryRow> rows, DateTimeOffset from, DateTimeOffset now, bool cost, string unit)
    {
        var first = from.UtcDateTime.Date;
        var last = now.UtcDateTime.Date;
        if ((last - first).TotalDays >= MaxDays)
        {
            first = last.AddDays(-(MaxDays - 1));
        }

        var days = (int)(last - first).TotalDays + 1;
        double Value(UsageApi.UsageSummaryRow r) => cost ? r.Cost : r.CpuSeconds;
        var byDay = rows.GroupBy(r => r.Start.UtcDateTime.Date).ToDictionary(g => g.Key, g => (Good: g.Where(r => !r.Wasted).Sum(Value), Wasted: g.Where(r => r.Wasted).Sum(Value)));
        var max = byDay.Values.Select(v => v.Good + v.Wasted).DefaultIfEmpty(0).Max();
        var bar = Math.Clamp(900 / days, 3, 24);
        const int left = 70, top = 10, bottom = 30;
        var width = left + (days * bar) + 10;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg id=\"usage-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{top + ChartHeight + bottom}\" data-measure=\"{(cost ? "cost" : "cpu")}\" data-unit=\"{E(unit)}\">");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{top + ChartHeight}\" x2=\"{width - 10}\" y2=\"{top + ChartHeight}\" stroke=\"#999\"/>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{left - 4}\" y=\"{top + 10}\" text-anchor=\"end\" font-size=\"11\">{Number(max)} {E(unit)}</text><text x=\"{left - 4}\" y=\"{top + ChartHeight}\" text-anchor=\"end\" font-size=\"11\">0</text>");
        for (var i = 0; i < days; i++)
        {
            var day = first.AddDays(i);
            var (good, wasted) = byDay.GetValueOrDefault(day);
            var x = left + (i * bar);
            var goodHeight = max > 0 ? good / max * ChartHeight : 0;
            var wastedHeight = max > 0 ? wasted / max * ChartHeight : 0;
            var date = day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            svg.Append(CultureInfo.InvariantCulture, $"<g class=\"day\" data-day=\"{date}\" data-good=\"{Number(good)}\" data-wasted=\"{Number(wasted)}\"><title>{date}: {Number(good)} {E(unit)} good, {Number(wasted)} {E(unit)} wasted</title>");
            svg.Append(CultureInfo.InvariantCulture, $"<rect class=\"good\" x=\"{x + 1}\" y=\"{F(top + ChartHeight - goodHeight)}\" width=\"{bar - 2}\" height=\"{F(goodHeight)}\" fill=\"#5cb85c\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<rect class=\"wasted\" x=\"{x + 1}\" y=\"{F(top + ChartHeight - goodHeight - wastedHeight)}\" width=\"{bar - 2}\" height=\"{F(wastedHeight)}\" fill=\"#d9534f\"/></g>");
            if (i == 0 || i == days - 1 || (days > 14 && i % 7 == 0))
            {
                svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x}\" y=\"{top + ChartHeight + 16}\" font-size=\"10\">{day.ToString("MM-dd", CultureInfo.InvariantCulture)}</text>");
            }
        }

        return svg.Append("</svg>").ToString();
    }

    /// <summary>The sums by tenant and kind, priced, wasted apart; then the totals per currency (GET /api/usage's totals).</summary>
    private void WriteTotals(UsageApi.UsageSummary summary)
    {
        WriteLiteral("<h3 id=\"totals-title\">Totals</h3>");
        if (summary.Rows.Count == 0)
        {
            WriteLiteral("<div class=\"alert alert-info\" id=\"no-usage\">No usage recorded in this period.</div>");
            return;
        }

        WriteLiteral("""
            <div class="table-responsive"><table class="table table-condensed table-hover" id="usage-totals">
            <thead><tr><th>Tenant</th><th>Kind</th><th>Records</th><th>CPU s</th><th>GB-s</th><th>Wall s</th><th>In</th><th>Out</th><th>Cost</th><th>Wasted records</th><th>Wasted CPU s</th><th>Wasted cost</th></tr></thead><tbody>
            """);
        foreach (var g in summary.Rows.GroupBy(r => (r.Tenant, r.Kind, r.Currency)).OrderBy(g => g.Key.Tenant, StringComparer.Ordinal).ThenBy(g => g.Key.Kind, StringComparer.Ordinal))
        {
            WriteRow($"<td>{E(g.Key.Tenant)}</td><td>{E(g.Key.Kind)}</td>", UsageApi.Total(g.Key.Currency, g), "usage-row");
        }

        foreach (var total in summary.Totals)
        {
            WriteRow("<td><strong>total</strong></td><td></td>", total, "usage-total");
        }

        WriteLiteral("</tbody></table></div><p class=\"text-muted\">Each tenant's records priced by its sheet (Prices, Tenants:ID:Prices); wasted work is within the figures, shown apart.</p>");
    }

    private void WriteRow(string head, UsageApi.UsageTotal t, string kind) => WriteLiteral(string.Create(CultureInfo.InvariantCulture,
        $"<tr class=\"{kind}\">{head}<td class=\"records\">{t.Records}</td><td class=\"cpu\">{Number(t.CpuSeconds)}</td><td>{Number(t.GbSeconds)}</td><td>{Number(t.WallSeconds)}</td><td>{t.BytesIn}</td><td>{t.BytesOut}</td><td class=\"cost\">{t.Cost:0.######} {E(t.Currency)}</td><td>{t.WastedRecords}</td><td>{Number(t.WastedCpuSeconds)}</td><td>{t.WastedCost:0.######} {E(t.Currency)}</td></tr>"));

    /// <summary>The period's records themselves, through GET /api/usage/records in each format (an admin's named tenant kept).</summary>
    private void WriteExports(TenantContext tenant, DateTimeOffset from)
    {
        var query = "from=" + Uri.EscapeDataString(from.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture))
            + (Access.Access.IsAdmin(Context.GetHttpContext().User) && tenant.Scope.Tenant is { } t ? "&tenant=" + Uri.EscapeDataString(t.Value) : "");
        WriteLiteral("<p id=\"exports\">The records of this period: "
            + string.Join(" · ", new[] { ("CSV", "csv"), ("JSON lines", "json"), ("Parquet", "parquet") }.Select(f => $"<a href=\"{E($"/api/usage/records?{query}&format={f.Item2}")}\">{f.Item1}</a>"))
            + " (or <code>pipelines usage --csv FILE</code>, <code>--jsonl FILE</code>, <code>--parquet FILE</code>)</p>");
    }

    private static string Number(double v) => v.ToString("0.######", CultureInfo.InvariantCulture);

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
}
