using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Pipelines.Quotas;
using Pipelines.Runs;
using Pipelines.Server.Access;
using Pipelines.Usage;

namespace Pipelines.Server.Api;

/// <summary>
/// The usage ledger over HTTP (docs/tenants.md, Usage and cost): <c>GET /api/usage</c> sums the
/// records a query covers by day or hour, tenant, kind, outcome and class, each sum priced by its
/// tenant's sheet; <c>GET /api/usage/records</c> streams the records themselves as CSV, JSON
/// lines or Parquet (Usage/UsageExport, one list of columns). A tenant's key reads only its own records (the ledger's view); an admin key reads every
/// tenant's, or one with <c>?tenant=</c>.
/// </summary>
internal static class UsageApi
{
    public static void MapUsageApi(this IEndpointRouteBuilder app)
    {
        var usage = app.MapGroup("/api/usage").WithTags("usage").RequireAuthorization(Access.Access.ReadPolicy);
        usage.MapGet("/", SummaryAsync).WithMetadata(TenantAccess.Listing).ProducesProblem(400)
            .WithSummary("Usage summed by day or hour (by), tenant, kind, outcome and class, with its cost: from, to (a date, a time, or 30d for since 30 days ago), run, function.");
        usage.MapGet("/records", RecordsAsync).WithMetadata(TenantAccess.Listing).ProducesProblem(400)
            .WithSummary("The usage records themselves, streamed: format=csv (default), json (one record per line) or parquet (in row groups), the same columns in each; the same filters.");
    }

    /// <summary>GET /api/usage's answer.</summary>
    internal sealed record UsageSummary(string By, DateTimeOffset? From, DateTimeOffset? To, IReadOnlyList<UsageSummaryRow> Rows, IReadOnlyList<UsageTotal> Totals)
    {
        /// <summary>The budgets of the tenants read (those that have one), for the period they are in now, whatever the query's period; left out when none.</summary>
        public IReadOnlyList<BudgetView>? Budgets { get; init; }
    }

    /// <summary>A tenant's budget for its current period: amount, spent and balance in its sheet's currency (from/until unset for a total budget); waits: the balance is at zero or below, so new work waits.</summary>
    internal sealed record BudgetView(string Tenant, string Period, DateTimeOffset? From, DateTimeOffset? Until, double Amount, double Spent, double Balance, string Currency, bool Waits)
    {
        public static BudgetView Of(BudgetBalance b) => new(b.Tenant.Value, b.PeriodName, b.From, b.Until, b.Amount, Math.Round(b.Spent, 6), Math.Round(b.Balance, 6), b.Currency, b.IsSpent);
    }

    /// <summary>One bucket's sums for a tenant, kind, outcome and class, priced.</summary>
    internal sealed record UsageSummaryRow(
        DateTimeOffset Start, string Tenant, string Kind, string Outcome, bool Harvested, long Records,
        double WallSeconds, double CpuSeconds, double GbSeconds, long BytesIn, long BytesOut, double Cost, string Currency)
    {
        /// <summary>Whether its records are wasted work (vacated, failed).</summary>
        [JsonIgnore]
        public bool Wasted => UsageOutcomes.IsWasted(Outcome);
    }

    /// <summary>The sums of every row in one currency; wasted work (vacated, failed) apart.</summary>
    internal sealed record UsageTotal(string Currency, long Records, double CpuSeconds, double GbSeconds, double WallSeconds, long BytesIn, long BytesOut, double Cost, long WastedRecords, double WastedCpuSeconds, double WastedCost);

    private static async Task<Results<Ok<UsageSummary>, ProblemHttpResult>> SummaryAsync(HttpRequest request, TenantContext tenant, TimeProvider time, CancellationToken ct)
    {
        UsageQuery query;
        try
        {
            query = Query(request, time.GetUtcNow());
        }
        catch (RunCatalog.FilterException e)
        {
            return Bad(e);
        }

        return TypedResults.Ok(await SummarizeAsync(tenant, query, ct));
    }

    /// <summary>
    /// The records <paramref name="query"/> covers in the caller's view, summed and each sum priced by its
    /// tenant's sheet, with the totals per currency (wasted work apart): GET /api/usage's answer and the
    /// dashboard's Usage page, one rule.
    /// </summary>
    internal static async Task<UsageSummary> SummarizeAsync(TenantContext tenant, UsageQuery query, CancellationToken ct)
    {
        var rows = new List<UsageSummaryRow>();
        foreach (var r in await tenant.Usage.AggregateAsync(query, ct))
        {
            var sheet = tenant.Prices.For(r.Tenant);
            var cost = sheet.Cost(r);
            rows.Add(new UsageSummaryRow(r.Bucket, r.Tenant.Value, r.Kind, r.Outcome, r.Harvested, r.Figures.Records,
                Round(r.Figures.WallSeconds), Round(r.Figures.CpuSeconds), Round(r.Figures.GbSeconds), r.Figures.BytesIn, r.Figures.BytesOut, Math.Round(cost, 6), sheet.Currency));
        }

        var totals = rows.GroupBy(r => r.Currency, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => Total(g.Key, g)).ToList();
        var budgets = await tenant.BudgetsAsync(ct);
        return new UsageSummary(query.By == UsageBucket.Hour ? "hour" : "day", query.From, query.To, rows, totals)
        {
            Budgets = budgets.Count == 0 ? null : [.. budgets.Select(BudgetView.Of)],
        };
    }

    /// <summary>The sums of <paramref name="rows"/> (of one currency), wasted work (vacated, failed) apart.</summary>
    internal static UsageTotal Total(string currency, IEnumerable<UsageSummaryRow> rows)
    {
        var all = rows.ToList();
        var wasted = all.Where(r => r.Wasted).ToList();
        return new UsageTotal(currency, all.Sum(r => r.Records), Round(all.Sum(r => r.CpuSeconds)), Round(all.Sum(r => r.GbSeconds)), Round(all.Sum(r => r.WallSeconds)),
            all.Sum(r => r.BytesIn), all.Sum(r => r.BytesOut), Math.Round(all.Sum(r => r.Cost), 6), wasted.Sum(r => r.Records), Round(wasted.Sum(r => r.CpuSeconds)), Math.Round(wasted.Sum(r => r.Cost), 6));
    }

    private static async Task RecordsAsync(HttpContext http, TenantContext tenant, TimeProvider time, CancellationToken ct)
    {
        var request = http.Request;
        var name = request.Query["format"].FirstOrDefault() ?? "csv";
        UsageQuery query;
        UsageFormat format;
        try
        {
            format = UsageExport.Parse(name) ?? throw new RunCatalog.FilterException($"format '{name}' is not csv, json or parquet");
            query = Query(request, time.GetUtcNow());
        }
        catch (RunCatalog.FilterException e)
        {
            await Bad(e).ExecuteAsync(http);
            return;
        }

        http.Response.ContentType = UsageExport.ContentType(format);
        await UsageExport.WriteAsync(tenant.Usage.RecordsAsync(query, ct), http.Response.Body, format, ct);
    }

    private static double Round(double value) => Math.Round(value, 3);

    /// <summary>The query the request asks; a parameter it cannot read is refused naming it (the runs' own rule for times, RunCatalog.ParseSince).</summary>
    private static UsageQuery Query(HttpRequest request, DateTimeOffset now)
    {
        var q = request.Query;
        var by = q["by"].FirstOrDefault() ?? "day";
        if (by is not ("day" or "hour"))
        {
            throw new RunCatalog.FilterException($"by '{by}' is not day or hour");
        }

        return new UsageQuery(
            RunCatalog.ParseSince(q["from"].FirstOrDefault(), now, "from"), RunCatalog.ParseSince(q["to"].FirstOrDefault(), now, "to"),
            q["run"].FirstOrDefault() is { Length: > 0 } run ? run : null, q["function"].FirstOrDefault() is { Length: > 0 } fn ? fn : null,
            by == "hour" ? UsageBucket.Hour : UsageBucket.Day);
    }

    private static ProblemHttpResult Bad(RunCatalog.FilterException e) => TypedResults.Problem(statusCode: 400, title: "Not a usage query", detail: e.Message);
}
