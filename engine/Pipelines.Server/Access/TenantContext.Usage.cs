using Pipelines.Usage;

namespace Pipelines.Server.Access;

/// <summary>The usage part of the request's tenant context (docs/tenants.md, Usage and cost).</summary>
internal sealed partial class TenantContext
{
    /// <summary>The usage ledger seen through <see cref="Scope"/>: a tenant's key reads only its own records.</summary>
    public IUsageStore Usage => Service<IUsageStore>().For(Scope);

    /// <summary>The price sheets (each tenant's over the common one).</summary>
    public PriceSheets Prices => Service<PriceSheets>();
}
