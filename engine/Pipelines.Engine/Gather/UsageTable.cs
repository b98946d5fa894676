using System.Globalization;
using System.Net;
using Pipelines.Usage;

namespace Pipelines.Gather;

/// <summary>
/// A run's usage and cost as a table (<c>id="usage"</c>): report.html's and the dashboard's run
/// page's, one rule, so that the page shows the figures the report shows. Wasted work apart, as
/// HTCondor shows good and bad put apart.
/// </summary>
public static class UsageTable
{
    /// <summary>The table, with <paramref name="tableClass"/> on it when given (the dashboard's Bootstrap classes).</summary>
    public static string ToHtml(RunUsage u, string? tableClass = null) => string.Create(CultureInfo.InvariantCulture, $"""
        <table id="usage"{(tableClass is null ? "" : $" class=\"{tableClass}\"")}><tr><th></th><th class="num">deliveries</th><th class="num">CPU s</th><th class="num">GB-s</th><th class="num">wall s</th><th class="num">in</th><th class="num">out</th><th class="num">harvested</th><th class="num">cost</th></tr>
        <tr class="usage-all"><td>all</td><td class="num">{u.Deliveries}</td><td class="num">{RunReport.N(u.CpuSeconds)}</td><td class="num">{RunReport.N(u.GbSeconds)}</td><td class="num">{RunReport.N(u.WallSeconds)}</td><td class="num">{RunReport.Bytes(u.BytesIn)}</td><td class="num">{RunReport.Bytes(u.BytesOut)}</td><td class="num">{u.HarvestedShare:P0}</td><td class="num cost">{u.Cost:0.######} {WebUtility.HtmlEncode(u.Currency)}</td></tr>
        <tr class="usage-wasted"><td>wasted (vacated, failed)</td><td class="num">{u.Wasted.Deliveries}</td><td class="num">{RunReport.N(u.Wasted.CpuSeconds)}</td><td></td><td class="num">{RunReport.N(u.Wasted.WallSeconds)}</td><td></td><td></td><td></td><td></td></tr></table>
        """);
}
