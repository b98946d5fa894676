using Microsoft.Extensions.Time.Testing;
using Pipelines.Tenancy;

namespace Pipelines.Tests.Tenancy;

/// <summary>
/// The fair-share rule on its own (a simulated cluster ticking once a second on a fake clock):
/// what each tenant gets of the slots, as slot-seconds, when several keep work waiting.
/// </summary>
[Unit]
public sealed class FairShareTests
{
    private static readonly TenantId A = TenantId.Parse("lab-a", "test");
    private static readonly TenantId B = TenantId.Parse("lab-b", "test");
    private static readonly TenantId C = TenantId.Parse("lab-c", "test");

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero));

    [Fact]
    public void Two_tenants_with_equal_shares_both_saturating_get_half_the_slot_seconds_each()
    {
        var cluster = new Cluster(_time, TimeSpan.FromDays(1), slots: 4, unitSeconds: 3);

        var got = cluster.Run(1_000, (A, 1), (B, 1));

        Assert.InRange(Fraction(got, A), 0.49, 0.51);
    }

    [Fact]
    public void Shares_of_two_to_one_give_two_to_one_of_the_slot_seconds()
    {
        var cluster = new Cluster(_time, TimeSpan.FromDays(1), slots: 6, unitSeconds: 2);

        var got = cluster.Run(3_000, (A, 2), (B, 1));

        Assert.InRange(got[A] / got[B], 1.9, 2.1);
    }

    [Fact]
    public void A_tenants_use_halves_in_one_half_life_when_it_runs_nothing()
    {
        var share = new FairShare(_time, TimeSpan.FromHours(1));
        share.Account(new Dictionary<TenantId, int> { [A] = 0 });
        _time.Advance(TimeSpan.FromSeconds(100));
        share.Account(new Dictionary<TenantId, int> { [A] = 3 });
        var before = share.UseOf(A);

        _time.Advance(TimeSpan.FromHours(1));

        Assert.Equal(300, before, 6);
        Assert.Equal(150, share.UseOf(A), 6);
    }

    [Fact]
    public void A_newcomer_against_a_heavy_user_gets_most_of_the_slots_but_never_more_than_four_in_five()
    {
        var cluster = new Cluster(_time, TimeSpan.FromDays(1), slots: 10, unitSeconds: 1);
        cluster.Run(3_600, (A, 1));

        var got = cluster.Run(60, (A, 1), (B, 1));

        // At equal shares the newcomer's weight is at most 2^2 times the heavy user's (U/ΣU runs from 0 to 1).
        Assert.InRange(Fraction(got, B), 0.6, 0.8);
    }

    [Fact]
    public void A_tenant_at_its_running_tasks_quota_is_given_nothing_and_the_others_get_the_slots()
    {
        var share = new FairShare(_time, TimeSpan.FromDays(1));

        var given = share.Allocate(5, [new(A, 10, InFlight: 2, Pending: 100, Quota: 2), new(B, 1, InFlight: 0, Pending: 100)]);

        Assert.False(given.ContainsKey(A));
        Assert.Equal(5, given[B]);
    }

    [Fact]
    public void A_tenant_under_its_quota_is_given_only_up_to_it()
    {
        var share = new FairShare(_time, TimeSpan.FromDays(1));

        var given = share.Allocate(5, [new(A, 1, InFlight: 1, Pending: 100, Quota: 3), new(B, 1, InFlight: 0, Pending: 1)]);

        Assert.Equal(2, given[A]);
        Assert.Equal(1, given[B]);
    }

    [Fact]
    public void Slots_nobody_can_take_stay_free()
    {
        var share = new FairShare(_time, TimeSpan.FromDays(1));

        var given = share.Allocate(8, [new(A, 1, InFlight: 0, Pending: 2), new(B, 1, InFlight: 1, Pending: 0)]);

        Assert.Equal(2, given[A]);
        Assert.Single(given);
    }

    [Fact]
    public void Nobody_waits_forever_over_ten_thousand_rounds_however_small_its_share()
    {
        var cluster = new Cluster(_time, TimeSpan.FromHours(1), slots: 1, unitSeconds: 1);
        cluster.Run(2_000, (A, 100));

        cluster.Run(10_000, (A, 100), (B, 1), (C, 0.1));

        // The smallest share (about 1/1000 of the total) is served about once in 1,000 rounds: every
        // tenant's longest wait stays within a few times that, never the whole run.
        Assert.All([A, B, C], t => Assert.InRange(cluster.LongestWait(t), 1, 5_000));
    }

    private static double Fraction(IReadOnlyDictionary<TenantId, double> got, TenantId tenant) => got[tenant] / got.Values.Sum();

    /// <summary>
    /// Workers of <paramref name="slots"/> slots whose every unit takes <paramref name="unitSeconds"/>;
    /// every tenant always has work waiting; once a second the rule fills the free slots.
    /// </summary>
    private sealed class Cluster(FakeTimeProvider time, TimeSpan halfLife, int slots, int unitSeconds)
    {
        private readonly FairShare _share = new(time, halfLife);
        private readonly List<(TenantId Tenant, int EndsAt)> _running = [];
        private readonly Dictionary<TenantId, (int Last, int Longest)> _waits = [];
        private int _second;

        /// <summary>The most seconds the tenant went without a unit given, the wait since its last one included.</summary>
        public int LongestWait(TenantId tenant) => _waits.TryGetValue(tenant, out var w) ? Math.Max(w.Longest, _second - w.Last) : _second;

        /// <summary>Slot-seconds each tenant held over <paramref name="seconds"/>.</summary>
        public IReadOnlyDictionary<TenantId, double> Run(int seconds, params (TenantId Tenant, double Share)[] tenants)
        {
            var got = tenants.ToDictionary(t => t.Tenant, _ => 0.0);
            foreach (var (tenant, _) in tenants)
            {
                _waits[tenant] = (_second, 0);
            }

            for (var s = 0; s < seconds; s++, _second++)
            {
                _running.RemoveAll(r => r.EndsAt <= _second);
                var held = tenants.ToDictionary(t => t.Tenant, t => _running.Count(r => r.Tenant == t.Tenant));
                var given = _share.Allocate(slots - _running.Count, [.. tenants.Select(t => new FairShare.Demand(t.Tenant, t.Share, held[t.Tenant], Pending: int.MaxValue))]);
                foreach (var (tenant, n) in given)
                {
                    _running.AddRange(Enumerable.Repeat((tenant, _second + unitSeconds), n));
                    var (last, longest) = _waits[tenant];
                    _waits[tenant] = (_second, Math.Max(longest, _second - last));
                }

                foreach (var r in _running)
                {
                    got[r.Tenant]++;
                }

                time.Advance(TimeSpan.FromSeconds(1));
                _share.Account(tenants.ToDictionary(t => t.Tenant, t => _running.Count(r => r.Tenant == t.Tenant)));
            }

            return got;
        }
    }
}
