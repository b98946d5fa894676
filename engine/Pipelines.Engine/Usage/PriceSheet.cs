using Microsoft.Extensions.Configuration;
using Pipelines.Settings;
using Pipelines.Tenancy;

namespace Pipelines.Usage;

/// <summary>
/// What work costs (section <c>Prices</c>, per tenant <c>Tenants:ID:Prices</c> over it;
/// docs/tenants.md): a linear sheet, so the stores sum figures and only this prices the sums
/// (<see cref="Cost(UsageRow)"/>), and no price is ever written in SQL. Unset prices are 0:
/// a server without a sheet shows usage at no cost.
/// </summary>
[SettingsSection]
public sealed record PriceSheet
{
    /// <summary>What the amounts are in (a currency code or a unit of credit); only shown.</summary>
    public string Currency { get; init; } = "EUR";

    /// <summary>The price of one CPU second, as the container's cgroup counted it.</summary>
    [AtLeastZero]
    public double CpuSecond { get; init; }

    /// <summary>The price of one GiB of reserved memory held one second (AWS Lambda's GB-second).</summary>
    [AtLeastZero]
    public double GbSecond { get; init; }

    /// <summary>The price of one invocation of a function, whatever it used.</summary>
    [AtLeastZero]
    public double Invocation { get; init; }

    /// <summary>The part taken off the CPU and memory price of harvested work (run in the kernel's idle class), from 0 to 1.</summary>
    [Between(0, 1)]
    public double HarvestedDiscount { get; init; }

    /// <summary>
    /// The price of <paramref name="figures"/>, harvested or not, with <paramref name="invocations"/>
    /// invocations among them: CPU seconds and GB-seconds at their prices (less the discount when
    /// harvested), plus the invocations at theirs. Every kind and outcome is priced alike: wasted work is
    /// shown apart (<see cref="RunUsage"/>), not priced apart; only a refusal is free (<see cref="Cost(UsageRow)"/>).
    /// </summary>
    private double Cost(UsageFigures figures, bool harvested, long invocations) =>
        ((figures.CpuSeconds * CpuSecond) + (figures.GbSeconds * GbSecond)) * (harvested ? 1 - HarvestedDiscount : 1) + (invocations * Invocation);

    /// <summary>
    /// The price of one aggregate row: the one home of what is priced. A refused invocation (a quota,
    /// the rate, a spent budget) never ran, so it costs nothing: it stays in the ledger, shown as
    /// refused, but a tenant hammering a spent budget does not deepen it. Every other outcome is
    /// priced by its figures, its invocations at <see cref="Invocation"/> each.
    /// </summary>
    public double Cost(UsageRow row) =>
        row.Outcome == UsageOutcomes.Refused ? 0 : Cost(row.Figures, row.Harvested, row.Kind == UsageKinds.Invocation ? row.Figures.Records : 0);

    /// <summary>The price of an aggregate's rows.</summary>
    public double Cost(IEnumerable<UsageRow> rows) => rows.Sum(Cost);
}

/// <summary>Each tenant's price sheet: <c>Prices</c>, with a tenant's <c>Tenants:ID:Prices</c> keys over it. Read once at start.</summary>
public sealed class PriceSheets
{
    private readonly Dictionary<TenantId, PriceSheet> _own;

    private PriceSheets(PriceSheet common, Dictionary<TenantId, PriceSheet> own) => (Common, _own) = (common, own);

    /// <summary>No sheet: every price 0.</summary>
    public static PriceSheets None { get; } = new(new PriceSheet(), []);

    /// <summary>The sheet of every tenant without one of its own.</summary>
    public PriceSheet Common { get; }

    public PriceSheet For(TenantId tenant) => _own.GetValueOrDefault(tenant) ?? Common;

    /// <summary>Reads <c>Prices</c> and each <c>Tenants:ID:Prices</c> (key by key over the common sheet); a value it cannot use stops the start, naming the key.</summary>
    public static PriceSheets From(IConfiguration config)
    {
        var common = SettingsBinder.Bind<PriceSheet>(config, "Prices");
        var own = new Dictionary<TenantId, PriceSheet>();
        foreach (var tenant in config.GetSection("Tenants").GetChildren().Where(t => t.GetSection("Prices").Exists()))
        {
            // The tenant's keys over the common ones: the common section's values, then the tenant's, bound as one.
            var merged = new ConfigurationBuilder()
                .AddInMemoryCollection(config.GetSection("Prices").AsEnumerable(makePathsRelative: true).Select(kv => new KeyValuePair<string, string?>("Prices:" + kv.Key, kv.Value)))
                .AddInMemoryCollection(tenant.GetSection("Prices").AsEnumerable(makePathsRelative: true).Select(kv => new KeyValuePair<string, string?>("Prices:" + kv.Key, kv.Value)))
                .Build();
            own[TenantId.Parse(tenant.Key, $"Tenants:{tenant.Key}")] = SettingsBinder.Bind<PriceSheet>(merged, "Prices");
        }

        return new PriceSheets(common, own);
    }
}
