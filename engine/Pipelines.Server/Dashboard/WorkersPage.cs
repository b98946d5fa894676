using System.Globalization;
using System.Text;
using Hangfire;
using Hangfire.Dashboard;
using Hangfire.Dashboard.Pages;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Harvest;
using Pipelines.Queue;
using static Pipelines.Server.Dashboard.RunHtml;

namespace Pipelines.Server.Dashboard;

/// <summary>
/// The dashboard's Workers page (docs/harvesting.md): each live worker's policy, the owner's load
/// and our harvested CPU now, tasks running, suspended and vacated, and a small chart of its last
/// hour (owner CPU in grey, harvested CPU in green, in cores; points every 10 s).
/// </summary>
internal sealed class WorkersPage : RazorPage
{
    public override void Execute()
    {
        Layout = new LayoutPage("Workers");
        var workers = HarvestBoard.Read(Context.GetHttpContext().RequestServices.GetRequiredService<IWorkerBoard>());
        WriteLiteral("<div class=\"row\"><div class=\"col-md-12\"><h1 class=\"page-header\">Workers</h1>");
        if (workers.Count == 0)
        {
            WriteLiteral("<div class=\"alert alert-info\">No live worker. Start one with <code>pipelines worker</code>.</div></div></div>");
            return;
        }

        WriteLiteral("""
            <div class="table-responsive"><table class="table workers-table">
            <thead><tr><th>Worker</th><th>Policy</th><th>Owner CPU</th><th>Harvested CPU</th><th>Owner memory</th><th>Running</th><th>Suspended</th><th>Vacated</th><th>Last hour</th></tr></thead><tbody>
            """);
        foreach (var (name, s) in workers)
        {
            var l = s.Latest;
            WriteLiteral(string.Create(CultureInfo.InvariantCulture, $"""
                <tr data-worker="{E(name)}">
                <td><code>{E(name)}</code><br><small title="{E(s.IdleMode)}">{E(s.IdleMode.Split(' ')[0])}</small></td>
                <td>{E(s.Policy)}{(s.Draining ? " <span class=\"label label-warning\">draining</span>" : "")}</td>
                <td>{(l is null ? "-" : $"{l.OwnerCpu:0.00} of {l.Cores} cores")}</td>
                <td>{(l is null ? "-" : $"{l.OursCpu:0.00} cores")}</td>
                <td>{(l is null ? "-" : $"{l.OwnerMemory / 1048576.0:0} MiB")}</td>
                <td>{s.Running} of {s.Allowed} allowed</td>
                <td>{s.Suspended}</td>
                <td>{s.Vacated}</td>
                <td>{Chart(s.History, l?.Cores ?? 1)}</td>
                </tr>
                """));
        }

        WriteLiteral("</tbody></table></div><p class=\"text-muted\">Grey: the owner's CPU; green: CPU harvested by this worker's containers (cores, the last hour, a point every 10 s). Figures are at most 10 s old.</p></div></div>");
    }

    /// <summary>A 240x60 inline SVG of the owner's and our CPU over the points given.</summary>
    internal static string Chart(IReadOnlyList<HarvestPoint> points, int cores)
    {
        if (points.Count < 2)
        {
            return "<span class=\"text-muted\">collecting</span>";
        }

        const double w = 240, h = 60;
        var t0 = points[0].At;
        var span = Math.Max(1, (points[^1].At - t0).TotalSeconds);
        string Line(Func<HarvestPoint, double> y)
        {
            var b = new StringBuilder();
            foreach (var p in points)
            {
                b.Append(CultureInfo.InvariantCulture, $"{(p.At - t0).TotalSeconds / span * w:0.#},{h - Math.Clamp(y(p) / Math.Max(1, cores), 0, 1) * h:0.#} ");
            }

            return b.ToString().TrimEnd();
        }

        return $"""<svg class="harvest-chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="owner and harvested CPU, last hour"><rect width="{w}" height="{h}" fill="#fafafa" stroke="#ddd"/><polyline fill="none" stroke="#999" stroke-width="1.5" points="{Line(p => p.OwnerCpu)}"/><polyline fill="none" stroke="#3c9a3c" stroke-width="1.5" points="{Line(p => p.HarvestedCpu)}"/></svg>""";
    }
}
