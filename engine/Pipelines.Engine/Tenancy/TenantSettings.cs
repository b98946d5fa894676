namespace Pipelines.Tenancy;

/// <summary>
/// One tenant as the operator configured it (<c>Tenants:&lt;id&gt;</c>): a display name, the
/// folder its runs write under (<see cref="Output"/>) and the further folders they may read
/// (<see cref="Inputs"/>), each normalised to a folder URI ending in <c>/</c>. Only the default
/// tenant may have no <see cref="Output"/>: it is then kept out of every other tenant's folders
/// instead (<see cref="TenantLocations"/>).
/// </summary>
public sealed record TenantSettings(TenantId Id, string Name, string? Output, IReadOnlyList<string> Inputs)
{
    /// <summary>Every folder of the tenant: its output, then its inputs.</summary>
    public IEnumerable<string> Locations => Output is null ? Inputs : [Output, .. Inputs];

    /// <summary>The tenant's part of the workers against the other tenants' (<c>Tenants:ID:Share</c>, else <c>Tenancy:Defaults:Share</c>).</summary>
    public double Share { get; init; } = 1;

    /// <summary>The tenant's quotas: its own section's keys over <c>Tenancy:Defaults:Quotas</c> (unset: no limit).</summary>
    public QuotaSettings Quotas { get; init; } = new();

    /// <summary>The tenant's budget: its own <c>Budget</c> keys over <c>Tenancy:Defaults:Budget</c> (no amount: no budget).</summary>
    public BudgetSettings Budget { get; init; } = new();
}
