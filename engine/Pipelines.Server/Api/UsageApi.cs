using System.Globalization;
using System.Text;
using System.Text.Json;
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
/// tenant's sheet; <c>GET /api/usage/records</c> streams the records themselves as CSV or JSON
/// lines. A tenant's key reads only its own records (the ledger's view); an admin key reads every
/// tenant's, or one with <c>?tenant=</c>.
/// </summary>
internal static class UsageApi
{
    // The API's names (camelCase, as every answer of the API); null figures left out.
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static void MapUsageApi(this IEndpointRouteBuilder app)
    {
        var usage = app.MapGroup("/api/usage").WithTags("usage").RequireAuthorization(Access.Access.ReadPolicy);
        usage.MapGet("/", SummaryAsync).WithMetadata(TenantAccess.Listing).ProducesProblem(400)
            .WithSummary("Usage summed by day or hour (by), tenant, kind, outcome and class, with its cost: from, to (a date, a time, or 30d for since 30 days ago), run, function.");
        usage.MapGet("/records", RecordsAsync).WithMetadata(TenantAccess.Listing).ProducesProblem(400)
            .WithSummary("The usage records themselves, streamed: format=csv (default) or json (one record per line); the same filters.");
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
        double WallSeconds, double CpuSeconds, double GbSeconds, long BytesIn, long BytesOut, double Cost, string Currency);

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

        var rows = new List<UsageSummaryRow>();
        foreach (var r in await tenant.Usage.AggregateAsync(query, ct))
        {
            var sheet = tenant.Prices.For(r.Tenant);
            var cost = sheet.Cost(r.Figures, r.Harvested, r.Kind == UsageKinds.Invocation ? r.Figures.Records : 0);
            rows.Add(new UsageSummaryRow(r.Bucket, r.Tenant.Value, r.Kind, r.Outcome, r.Harvested, r.Figures.Records,
                Round(r.Figures.WallSeconds), Round(r.Figures.CpuSeconds), Round(r.Figures.GbSeconds), r.Figures.BytesIn, r.Figures.BytesOut, Math.Round(cost, 6), sheet.Currency));
        }

        var totals = rows.GroupBy(r => r.Currency, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g =>
        {
            var wasted = g.Where(r => r.Outcome is UsageOutcomes.Vacated or UsageOutcomes.Failed).ToList();
            return new UsageTotal(g.Key, g.Sum(r => r.Records), Round(g.Sum(r => r.CpuSeconds)), Round(g.Sum(r => r.GbSeconds)), Round(g.Sum(r => r.WallSeconds)),
                g.Sum(r => r.BytesIn), g.Sum(r => r.BytesOut), Math.Round(g.Sum(r => r.Cost), 6), wasted.Sum(r => r.Records), Round(wasted.Sum(r => r.CpuSeconds)), Math.Round(wasted.Sum(r => r.Cost), 6));
        }).ToList();
        var budgets = await tenant.BudgetsAsync(ct);
        return TypedResults.Ok(new UsageSummary(query.By == UsageBucket.Hour ? "hour" : "day", query.From, query.To, rows, totals)
        {
            Budgets = budgets.Count == 0 ? null : [.. budgets.Select(BudgetView.Of)],
        });
    }

    private static async Task RecordsAsync(HttpContext http, TenantContext tenant, TimeProvider time, CancellationToken ct)
    {
        var request = http.Request;
        var format = request.Query["format"].FirstOrDefault() ?? "csv";
        UsageQuery query;
        try
        {
            query = format is "csv" or "json" ? Query(request, time.GetUtcNow()) : throw new RunCatalog.FilterException($"format '{format}' is not csv or json");
        }
        catch (RunCatalog.FilterException e)
        {
            await Bad(e).ExecuteAsync(http);
            return;
        }

        var response = http.Response;
        response.ContentType = format == "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson";
        await using var writer = new StreamWriter(response.Body, new UTF8Encoding(false), bufferSize: 16384);
        if (format == "csv")
        {
            await writer.WriteLineAsync(string.Join(',', Columns));
        }

        await foreach (var r in tenant.Usage.RecordsAsync(query, ct))
        {
            await writer.WriteLineAsync(format == "csv" ? CsvLine(r) : JsonSerializer.Serialize(r, Json));
        }
    }

    /// <summary>The export's columns, in order (docs/tenants.md).</summary>
    internal static readonly string[] Columns =
    [
        "id", "tenant", "kind", "run_id", "task_index", "delivery", "function", "version", "route", "worker", "started_at", "ended_at",
        "wall_seconds", "cpu_seconds", "peak_memory_bytes", "reserved_memory_bytes", "gb_seconds", "bytes_in", "bytes_out", "harvested", "outcome", "reason",
    ];

    private static string CsvLine(UsageRecord r) => string.Join(',',
        Csv(r.Id), Csv(r.Tenant.Value), Csv(r.Kind), Csv(r.RunId), N(r.TaskIndex), N(r.Delivery), Csv(r.Function), N(r.Version), Csv(r.Route), Csv(r.Worker),
        r.StartedAt.UtcDateTime.ToString("O", CultureInfo.InvariantCulture), r.EndedAt.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
        D(r.WallSeconds), D(r.CpuSeconds), N(r.PeakMemoryBytes), N(r.ReservedMemoryBytes), D(r.GbSeconds), N<long>(r.BytesIn), N<long>(r.BytesOut),
        r.Harvested ? "true" : "false", Csv(r.Outcome), Csv(r.Reason));

    private static string N<T>(T? value)
        where T : struct, IFormattable => value is { } v ? v.ToString(null, CultureInfo.InvariantCulture) : "";

    private static string D(double? value) => value is { } v ? v.ToString("R", CultureInfo.InvariantCulture) : "";

    // RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled.
    private static string Csv(string? value) =>
        value is null ? "" : value.AsSpan().IndexOfAny(",\"\r\n") < 0 ? value : "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

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
