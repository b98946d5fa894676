using Pipelines.RunStore;

namespace Pipelines.Tenancy;

/// <summary>
/// Who gets the next free worker slots when several tenants have work waiting (docs/tenants.md,
/// Fair share): HTCondor's rule, a configured share corrected by recent use. Each tenant's use U
/// is the slot-seconds it held, decayed with a half-life H: U ← U·2^(−Δ/H) + n·Δ over each tick of
/// Δ seconds with n units in flight. A tenant's weight is w = S·2^(−(U/ΣU)/(S/ΣS)) over the tenants
/// in play (w = S while nobody has used anything), so a tenant that used more than its share of
/// the recent past weighs less, and a newcomer against a heavy user gets most, never all, of the
/// freed slots (at equal shares, at most 4 to 1) until their use evens out. Slots are handed out
/// one at a time in proportion to the weights by start-time fair queuing: each tenant has a
/// virtual time that a unit given to it advances by 1/w; the next unit goes to the eligible
/// tenant with the least, and a tenant that comes back from having nothing waiting starts at
/// the virtual time of the last unit given (it banks nothing while away: that is what U is for).
/// Nobody is starved: every weight is above zero, so every waiting tenant's turn comes.
/// </summary>
/// <remarks>
/// Pure: no I/O, the clock is the given <see cref="TimeProvider"/>; the dispatcher keeps the uses
/// in the run store (tenant_usage) so a new one continues; virtual times are its own (a new one
/// starts everyone level). Why not "the least (n + 1)/w", n the units a tenant holds: with one
/// free slot per tick and units shorter than a tick, n is 0 for all at every choice and the
/// heaviest weight takes every slot; the use correction is bounded (a factor of 2^(ΣS/S)), so
/// a tenant of share 1 beside one of 100 would wait for as long as the other had work.
/// </remarks>
internal sealed class FairShare(TimeProvider time, TimeSpan halfLife)
{
    private readonly Dictionary<TenantId, TenantUse> _use = [];
    private readonly Dictionary<TenantId, double> _virtual = [];
    private HashSet<TenantId> _waiting = [];
    private double _clock;

    /// <summary>One tenant in play at a tick: its share, the units it holds (released or running), its waiting ones, and its running-tasks quota (null: none).</summary>
    public readonly record struct Demand(TenantId Tenant, double Share, int InFlight, int Pending, int? Quota = null);

    /// <summary>Every tenant's decayed use as last accounted (what the dispatcher stores).</summary>
    public IReadOnlyDictionary<TenantId, TenantUse> Uses => _use;

    /// <summary>Takes uses kept from before (a previous dispatcher's), over what this one has.</summary>
    public void Restore(IEnumerable<KeyValuePair<TenantId, TenantUse>> saved)
    {
        foreach (var (tenant, use) in saved)
        {
            _use[tenant] = use;
        }
    }

    /// <summary>A tenant's use decayed to now (0 for a tenant never seen).</summary>
    public double UseOf(TenantId tenant) => _use.TryGetValue(tenant, out var u) ? Decay(u, time.GetUtcNow()) : 0;

    /// <summary>
    /// Charges every tenant for the time since its last accounting: its use decays, and it adds
    /// the slot-seconds of <paramref name="inFlight"/> (the units it held over that time).
    /// </summary>
    public void Account(IReadOnlyDictionary<TenantId, int> inFlight)
    {
        var now = time.GetUtcNow();
        foreach (var tenant in _use.Keys.Union(inFlight.Keys).ToList())
        {
            var use = _use.TryGetValue(tenant, out var u) ? u : new TenantUse(0, now);
            var seconds = Math.Max(0, (now - use.UpdatedAt).TotalSeconds);
            _use[tenant] = new TenantUse(Decay(use, now) + (inFlight.GetValueOrDefault(tenant) * seconds), now);
        }
    }

    /// <summary>The weights of the tenants in play, by the rule above.</summary>
    public IReadOnlyDictionary<TenantId, double> Weights(IReadOnlyList<Demand> demands)
    {
        var now = time.GetUtcNow();
        var uses = demands.ToDictionary(d => d.Tenant, d => _use.TryGetValue(d.Tenant, out var u) ? Decay(u, now) : 0);
        var sumU = uses.Values.Sum();
        var sumS = demands.Sum(d => d.Share);
        return demands.ToDictionary(
            d => d.Tenant,
            d => sumU <= 0 ? d.Share : d.Share * Math.Pow(2, -(uses[d.Tenant] / sumU) / (d.Share / sumS)));
    }

    /// <summary>
    /// Hands out up to <paramref name="capacity"/> slots, one at a time, to the eligible tenant
    /// (pending work, under its quota) with the least virtual time; ties go to the tenant first by
    /// id. Returns how many units each tenant gets (tenants given none are left out).
    /// </summary>
    public IReadOnlyDictionary<TenantId, int> Allocate(int capacity, IReadOnlyList<Demand> demands)
    {
        var weights = Weights(demands);
        var state = demands.OrderBy(d => d.Tenant.Value, StringComparer.Ordinal).Select(d => (d.Tenant, Held: d.InFlight, d.Pending, d.Quota, Weight: weights[d.Tenant])).ToArray();
        foreach (var s in state)
        {
            // One back from having nothing waiting starts level with the last unit given.
            var v = _virtual.GetValueOrDefault(s.Tenant);
            _virtual[s.Tenant] = _waiting.Contains(s.Tenant) ? v : Math.Max(v, _clock);
        }

        var given = new Dictionary<TenantId, int>();
        for (var slot = 0; slot < capacity; slot++)
        {
            var best = -1;
            for (var i = 0; i < state.Length; i++)
            {
                var s = state[i];
                if (s.Pending <= 0 || (s.Quota is { } q && s.Held >= q))
                {
                    continue;
                }

                if (best < 0 || _virtual[s.Tenant] < _virtual[state[best].Tenant])
                {
                    best = i;
                }
            }

            if (best < 0)
            {
                break;
            }

            var tenant = state[best].Tenant;
            _clock = _virtual[tenant];
            _virtual[tenant] += 1 / state[best].Weight;
            state[best].Held++;
            state[best].Pending--;
            given[tenant] = given.GetValueOrDefault(tenant) + 1;
        }

        _waiting = [.. state.Where(s => s.Pending > 0).Select(s => s.Tenant)];
        return given;
    }

    private double Decay(TenantUse use, DateTimeOffset now) =>
        use.Decayed * Math.Pow(2, -Math.Max(0, (now - use.UpdatedAt).TotalSeconds) / halfLife.TotalSeconds);
}
