using Pipelines.Tenancy;

namespace Pipelines.Usage;

/// <summary>The width of an aggregate's time buckets (by a record's end, in UTC).</summary>
public enum UsageBucket { Day, Hour }

/// <summary>
/// Which usage records a read covers: ended in [<see cref="From"/>, <see cref="To"/>), of one run or
/// one function, of one tenant (an admin's filter; a tenant's view sets it); null filters nothing.
/// </summary>
public sealed record UsageQuery(DateTimeOffset? From = null, DateTimeOffset? To = null, string? RunId = null, string? Function = null, UsageBucket By = UsageBucket.Day)
{
    /// <summary>Only this tenant's records; null: every tenant's the store reaches.</summary>
    public TenantId? Tenant { get; init; }

    /// <summary>Whether <paramref name="r"/> is covered, the rule both stores hold (PostgresUsageStore writes it in SQL).</summary>
    public bool Matches(UsageRecord r) =>
        (From is not { } from || r.EndedAt >= from) && (To is not { } to || r.EndedAt < to)
        && (RunId is null || r.RunId == RunId) && (Function is null || r.Function == Function)
        && (Tenant is not { } t || r.Tenant == t);

    /// <summary>The start of <paramref name="at"/>'s bucket, in UTC.</summary>
    public DateTimeOffset BucketOf(DateTimeOffset at)
    {
        var u = at.UtcDateTime;
        return new DateTimeOffset(By == UsageBucket.Hour ? new DateTime(u.Year, u.Month, u.Day, u.Hour, 0, 0, DateTimeKind.Utc) : u.Date, TimeSpan.Zero);
    }
}

/// <summary>Summed figures of some usage records: what a price sheet prices (PriceSheet.Cost), never priced in SQL.</summary>
public sealed record UsageFigures(long Records, double WallSeconds, double CpuSeconds, double GbSeconds, long BytesIn, long BytesOut)
{
    public static UsageFigures Zero { get; } = new(0, 0, 0, 0, 0, 0);

    /// <summary>The figures of one record (an unmeasured figure adds nothing).</summary>
    public static UsageFigures Of(UsageRecord r) => new(1, r.WallSeconds, r.CpuSeconds ?? 0, r.GbSeconds ?? 0, r.BytesIn, r.BytesOut);

    public UsageFigures Add(UsageFigures o) => new(Records + o.Records, WallSeconds + o.WallSeconds, CpuSeconds + o.CpuSeconds, GbSeconds + o.GbSeconds, BytesIn + o.BytesIn, BytesOut + o.BytesOut);
}

/// <summary>One group of an aggregate: the records of one tenant, kind, outcome and class that ended in one bucket, summed.</summary>
public sealed record UsageRow(DateTimeOffset Bucket, TenantId Tenant, string Kind, string Outcome, bool Harvested, UsageFigures Figures);
