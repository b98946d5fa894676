namespace Pipelines.Triggers;

/// <summary>
/// How a poll lists the watched prefix. A full listing costs one LIST request per 1,000 objects
/// under the prefix and a ledger lookup per object; an incremental one (S3 StartAfter the last
/// key seen) costs one request per 1,000 new keys, and a single request when nothing is new,
/// but sees only keys that sort after every key seen before. So: small prefixes are listed in
/// full every time (always exact), large ones incrementally, and the reconciliation job lists
/// them in full at a slower interval for keys that do not grow (and overwritten objects).
/// </summary>
internal static class ListingRule
{
    /// <summary>Null StartAfter means a full listing.</summary>
    public static (bool Full, string? StartAfter) Choose(TriggerPollState state, bool reconcile, int fullListingLimit)
    {
        var full = reconcile
            || state.StartAfter is null
            || state.LastFullAt is null
            || state.LastFullListed is null
            || state.LastFullListed <= fullListingLimit;
        return full ? (true, null) : (false, state.StartAfter);
    }
}
