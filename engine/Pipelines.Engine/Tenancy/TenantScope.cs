namespace Pipelines.Tenancy;

/// <summary>
/// What a store view reaches: one tenant's objects (<see cref="Of"/>), or every tenant's
/// (<see cref="All"/>: the engine's own singletons, and an admin key that names no tenant).
/// A view of one tenant answers for another tenant's object exactly as for a missing one.
/// </summary>
public sealed record TenantScope
{
    private TenantScope(TenantId? tenant) => Tenant = tenant;

    /// <summary>Every tenant's objects.</summary>
    public static TenantScope All { get; } = new((TenantId?)null);

    /// <summary>The one tenant this scope reaches; null for <see cref="All"/>.</summary>
    public TenantId? Tenant { get; }

    public bool IsAll => Tenant is null;

    /// <summary>Only <paramref name="tenant"/>'s objects.</summary>
    public static TenantScope Of(TenantId tenant) => new(tenant);

    /// <summary>Whether an object of <paramref name="owner"/> is inside this scope.</summary>
    public bool Admits(TenantId owner) => Tenant is not { } t || t == owner;

    public override string ToString() => Tenant is { } t ? "tenant " + t : "all tenants";
}
