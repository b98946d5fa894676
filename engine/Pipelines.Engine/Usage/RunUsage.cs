using System.Globalization;
using System.Text.Json.Serialization;

namespace Pipelines.Usage;

/// <summary>
/// A run's usage and cost, run.json's <c>usage</c> block (docs/provenance.md), from its task
/// deliveries' usage records: all of them summed, the wasted ones (vacated, failed) apart, and the
/// cost by the run's tenant's price sheet, which is written beside it.
/// </summary>
public sealed record RunUsage
{
    /// <summary>Task deliveries recorded (a cached task has none; a redelivered one has one per delivery).</summary>
    [JsonPropertyName("deliveries")]
    public long Deliveries { get; init; }

    [JsonPropertyName("cpu_seconds")]
    public double CpuSeconds { get; init; }

    [JsonPropertyName("gb_seconds")]
    public double GbSeconds { get; init; }

    [JsonPropertyName("wall_seconds")]
    public double WallSeconds { get; init; }

    [JsonPropertyName("bytes_in")]
    public long BytesIn { get; init; }

    [JsonPropertyName("bytes_out")]
    public long BytesOut { get; init; }

    /// <summary>The part of the wall seconds that ran in the kernel's idle class (harvested).</summary>
    [JsonPropertyName("harvested_share")]
    public double HarvestedShare { get; init; }

    /// <summary>What deliveries that were vacated or failed used (HTCondor's wasted time), within the totals above.</summary>
    [JsonPropertyName("wasted")]
    public required RunUsageWasted Wasted { get; init; }

    [JsonPropertyName("cost")]
    public double Cost { get; init; }

    [JsonPropertyName("currency")]
    public required string Currency { get; init; }

    /// <summary>The sheet the cost was priced with.</summary>
    [JsonPropertyName("prices")]
    public required RunUsagePrices Prices { get; init; }

    /// <summary>The block of <paramref name="records"/> priced by <paramref name="sheet"/>.</summary>
    public static RunUsage Of(IReadOnlyList<UsageRecord> records, PriceSheet sheet) =>
        Of(records.GroupBy(r => (r.Kind, r.Outcome, r.Harvested))
            .Select(g => new UsageRow(default, g.First().Tenant, g.Key.Kind, g.Key.Outcome, g.Key.Harvested, Sum(g))).ToList(), sheet);

    /// <summary>
    /// The block of a run's aggregated records (IUsageStore.AggregateAsync with the run's id; any
    /// buckets) priced by <paramref name="sheet"/>: the run page's live usage, without reading every record.
    /// </summary>
    public static RunUsage Of(IReadOnlyList<UsageRow> rows, PriceSheet sheet)
    {
        var all = rows.Aggregate(UsageFigures.Zero, (s, r) => s.Add(r.Figures));
        var wasted = rows.Where(r => UsageOutcomes.IsWasted(r.Outcome)).Aggregate(UsageFigures.Zero, (s, r) => s.Add(r.Figures));
        var harvestedWall = rows.Where(r => r.Harvested).Sum(r => r.Figures.WallSeconds);
        var cost = sheet.Cost(rows);
        return new RunUsage
        {
            Deliveries = all.Records,
            CpuSeconds = Math.Round(all.CpuSeconds, 3),
            GbSeconds = Math.Round(all.GbSeconds, 3),
            WallSeconds = Math.Round(all.WallSeconds, 3),
            BytesIn = all.BytesIn,
            BytesOut = all.BytesOut,
            HarvestedShare = all.WallSeconds > 0 ? Math.Round(harvestedWall / all.WallSeconds, 4) : 0,
            Wasted = new RunUsageWasted(wasted.Records, Math.Round(wasted.CpuSeconds, 3), Math.Round(wasted.WallSeconds, 3)),
            Cost = Math.Round(cost, 6),
            Currency = sheet.Currency,
            Prices = new RunUsagePrices(sheet.CpuSecond, sheet.GbSecond, sheet.Invocation, sheet.HarvestedDiscount),
        };
    }

    /// <summary>The run's cost line, as `pipelines status` prints it: the cost, what it was for, the wasted part.</summary>
    public string Line() => string.Create(CultureInfo.InvariantCulture,
        $"{Cost:0.######} {Currency} for {Deliveries} deliveries: {CpuSeconds:0.###} CPU s, {GbSeconds:0.###} GB-s, {WallSeconds:0.###} wall s, {HarvestedShare * 100:0}% harvested; wasted (vacated, failed): {Wasted.Deliveries} deliveries, {Wasted.CpuSeconds:0.###} CPU s");

    private static UsageFigures Sum(IEnumerable<UsageRecord> records) => records.Aggregate(UsageFigures.Zero, (s, r) => s.Add(UsageFigures.Of(r)));
}

/// <summary>The wasted part of a run's usage: deliveries vacated or failed.</summary>
public sealed record RunUsageWasted(
    [property: JsonPropertyName("deliveries")] long Deliveries,
    [property: JsonPropertyName("cpu_seconds")] double CpuSeconds,
    [property: JsonPropertyName("wall_seconds")] double WallSeconds);

/// <summary>The price sheet a run's cost was priced with.</summary>
public sealed record RunUsagePrices(
    [property: JsonPropertyName("cpu_second")] double CpuSecond,
    [property: JsonPropertyName("gb_second")] double GbSecond,
    [property: JsonPropertyName("invocation")] double Invocation,
    [property: JsonPropertyName("harvested_discount")] double HarvestedDiscount);
