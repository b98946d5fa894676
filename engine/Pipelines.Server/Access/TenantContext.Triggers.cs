using Pipelines.Triggers;

namespace Pipelines.Server.Access;

/// <summary>The triggers part of the request's tenant context (docs/tenants.md).</summary>
internal sealed partial class TenantContext
{
    /// <summary>The registered workflows seen through <see cref="Scope"/>.</summary>
    public ITriggerStore Triggers => Service<ITriggerStore>().For(Scope);

    /// <summary>The registrar of the tenant that owns what this request registers (its locations checked against that tenant's).</summary>
    public TriggerRegistrar Registrar => Service<TriggerRegistrar>().For(Owner.Tenant);

    /// <summary>S3 event notifications matched against the scope's registered workflows only.</summary>
    public S3EventIngest Ingest => Service<S3EventIngest>().For(Scope);
}
