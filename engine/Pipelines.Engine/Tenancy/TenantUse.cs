namespace Pipelines.Tenancy;

/// <summary>A tenant's decayed use in slot-seconds as of <paramref name="UpdatedAt"/> (the dispatcher's fair share, docs/tenants.md).</summary>
public readonly record struct TenantUse(double Decayed, DateTimeOffset UpdatedAt);
