using Pipelines.Quotas;
using Pipelines.RunStore;
using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.Server.Access;

/// <summary>The usage part of the request's tenant context (docs/tenants.md, Usage and cost).</summary>
internal sealed partial class TenantContext
{
    /// <summary>The usage ledger seen through <see cref="Scope"/>: a tenant's key reads only its own records.</summary>
    public IUsageStore Usage => Service<IUsageStore>().For(Scope);

    /// <summary>The price sheets (each tenant's over the common one).</summary>
    public PriceSheets Prices => Service<PriceSheets>();

    /// <summary>
    /// The balances of the budgets <see cref="Scope"/> reaches, by tenant: a tenant's key its own
    /// (when it has one), an admin key over every tenant every tenant's that has one.
    /// </summary>
    public async Task<IReadOnlyList<BudgetBalance>> BudgetsAsync(CancellationToken cancellationToken)
    {
        var budgets = Service<TenantBudgets>();
        IEnumerable<TenantId> reached = Scope.Tenant is { } one ? [one] : Service<TenantOptions>().All.Select(t => t.Id);
        var balances = new List<BudgetBalance>();
        foreach (var t in reached.Where(budgets.Has))
        {
            balances.Add((await budgets.BalanceAsync(t, cancellationToken))!);
        }

        return balances;
    }

    /// <summary>
    /// A run's usage and cost from the ledger as it is now (while the run goes on, what its deliveries
    /// recorded so far), priced by its tenant's sheet: the rule run.json's block is made by (RunUsage),
    /// from the ledger's sums rather than every record. GET /api/runs/{id} and the run page show it.
    /// </summary>
    public async Task<RunUsage> RunUsageAsync(RunRecord run, CancellationToken ct) =>
        RunUsage.Of(await Usage.AggregateAsync(new UsageQuery(RunId: run.RunId), ct).ConfigureAwait(false), Prices.For(run.Tenant));
}
