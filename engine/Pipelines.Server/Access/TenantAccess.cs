namespace Pipelines.Server.Access;

/// <summary>
/// What an endpoint (or dashboard page) reaches of a tenant's objects, declared on every endpoint
/// (<c>.WithMetadata(TenantAccess.Owned)</c>) so that one test over the route table
/// (TenantAccessMatrixTests) holds each endpoint to the rule of its kind (docs/tenants.md, "The access matrix").
/// </summary>
internal sealed class TenantAccess
{
    private TenantAccess(string kind) => Kind = kind;

    /// <summary>Reaches nothing of a tenant's: health, login, the OpenAPI document, the workers' figures (machines name no run).</summary>
    public static TenantAccess Open { get; } = new("open");

    /// <summary>Addresses one object by its id or name: another tenant's answers exactly as a missing one.</summary>
    public static TenantAccess Owned { get; } = new("owned");

    /// <summary>Lists the caller's tenant's objects: another tenant's are absent.</summary>
    public static TenantAccess Listing { get; } = new("listing");

    /// <summary>Creates an object of the caller's tenant from a body naming locations: another tenant's is a 400 naming the field.</summary>
    public static TenantAccess Creating { get; } = new("creating");

    /// <summary>
    /// Cluster-wide (every tenant's figures, or the machines): an admin key only on a server with
    /// tenants (403 to a tenant's key; a dashboard page answers 404); on a server without tenants,
    /// the one tenant's keys as their role allows.
    /// </summary>
    public static TenantAccess Admin { get; } = new("admin");

    /// <summary>The kind's name, as the docs and the matrix name it.</summary>
    public string Kind { get; }

    public override string ToString() => Kind;
}
