using Pipelines.Tenancy;

namespace Pipelines.Server.Access;

/// <summary>The runs part of the request's tenant context (docs/tenants.md).</summary>
internal sealed partial class TenantContext
{
    /// <summary>
    /// Whether this request is held to one tenant's runs on a server with tenants: then even what the
    /// engine could read without the run store (an s3 run folder, for lineage) answers only for the
    /// scope's runs. A server without tenants, or an admin key over every tenant, is not confined.
    /// </summary>
    public bool Confined => !Scope.IsAll && Service<TenantOptions>().Configured;
}
