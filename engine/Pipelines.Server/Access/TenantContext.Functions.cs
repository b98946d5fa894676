using Pipelines.Functions;
using Pipelines.Tenancy;

namespace Pipelines.Server.Access;

internal sealed partial class TenantContext
{
    private FunctionService? _functions;

    /// <summary>
    /// The functions as <see cref="Scope"/> sees them: names, invocations and figures of the scope's
    /// tenant (every tenant's listings for an admin key naming none). The engine's service keeps one view
    /// per tenant, so a request pays no allocation for it (the sync invoke path).
    /// </summary>
    public FunctionService Functions => _functions ??= Service<FunctionService>().For(Scope);

    /// <summary>The functions of <see cref="Owner"/>'s tenant: where a deploy goes (an admin key's own tenant when it names none).</summary>
    public FunctionService OwnFunctions => Service<FunctionService>().For(TenantScope.Of(Owner.Tenant));
}
