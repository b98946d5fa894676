namespace Pipelines.Tenancy;

/// <summary>A request would take a tenant past a quota that refuses rather than waits (StoredBytes); nothing of it was kept.</summary>
public sealed class QuotaExceededException(string quota, string message) : PipelinesException(message, retryHelps: false)
{
    /// <summary>The quota's key, e.g. <c>StoredBytes</c>.</summary>
    public string Quota { get; } = quota;

    /// <summary>The refusal of a push that would take a tenant holding <paramref name="stored"/> bytes past <paramref name="limit"/> by <paramref name="adding"/>.</summary>
    public static QuotaExceededException StoredBytes(long stored, long adding, long limit) => new(
        nameof(QuotaSettings.StoredBytes),
        $"this tenant's images take {Model.Quantities.FormatSize(stored)} of the algorithm store; {Model.Quantities.FormatSize(adding)} more is over its quota StoredBytes of {Model.Quantities.FormatSize(limit)}: delete versions it no longer needs; nothing was stored");
}
