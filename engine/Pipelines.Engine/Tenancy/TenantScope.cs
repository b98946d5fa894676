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

    /// <summary>
    /// The tenant of a view taken with this scope from a store whose own scope is <paramref name="current"/>
    /// (null: the whole store), the one rule of every store's <c>For</c>: a whole store narrows to
    /// any scope; a view stays itself for its own tenant or all, and cannot be widened to another.
    /// </summary>
    public TenantId? Narrow(TenantId? current) => current is not { } own
        ? Tenant
        : Admits(own) ? own : throw new InvalidOperationException($"a view of tenant {own} cannot reach {this}: take the view from the engine's store");

    public override string ToString() => Tenant is { } t ? "tenant " + t : "all tenants";
}
