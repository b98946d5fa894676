using Pipelines.Algorithms;
using Pipelines.Tenancy;

namespace Pipelines.Server.Access;

internal sealed partial class TenantContext
{
    /// <summary>The algorithms as <see cref="Scope"/> sees them (one view per tenant, made once by the engine's service).</summary>
    public AlgorithmService Algorithms => Service<AlgorithmService>().For(Scope);

    /// <summary>The algorithms of <see cref="Owner"/>'s tenant: where a push goes (an admin key's own tenant when it names none).</summary>
    public AlgorithmService OwnAlgorithms => Service<AlgorithmService>().For(TenantScope.Of(Owner.Tenant));

    /// <summary>The algorithm catalog as <see cref="Scope"/> sees it (image loads of the tenant's runs and functions).</summary>
    public IAlgorithmStore Catalog => Service<IAlgorithmStore>().For(Scope);
}
