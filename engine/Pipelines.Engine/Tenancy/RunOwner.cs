namespace Pipelines.Tenancy;

/// <summary>
/// Who a run is submitted for: the tenant that will own it (its records, its outputs, its usage) and
/// the name of whoever asked, kept as the run's <c>submitted_by</c> (a key's name, a trigger, the CLI's
/// operator). The engine never infers either: the front end that authenticated the caller says.
/// </summary>
public sealed record RunOwner(TenantId Tenant, string? SubmittedBy)
{
    /// <summary>The operator's own submissions (the CLI on the database, the embedded mode): the default tenant, no name.</summary>
    public static RunOwner Operator { get; } = new(TenantId.Default, null);
}
