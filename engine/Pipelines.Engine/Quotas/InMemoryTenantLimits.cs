using Pipelines.Tenancy;

namespace Pipelines.Quotas;

/// <summary>The tenant counters of the embedded mode (one process, which keeps every holder): a lock around two dictionaries.</summary>
internal sealed class InMemoryTenantLimits : ITenantLimits
{
    private readonly Lock _gate = new();
    private readonly Dictionary<(TenantId Tenant, LimitKind Kind), HashSet<string>> _holders = [];
    private readonly Dictionary<TenantId, (double Tokens, DateTimeOffset At)> _buckets = [];

    public Task<bool> TryAcquireAsync(TenantId tenant, LimitKind kind, string holder, int limit, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_holders.TryGetValue((tenant, kind), out var held))
            {
                _holders[(tenant, kind)] = held = new HashSet<string>(StringComparer.Ordinal);
            }

            return Task.FromResult(held.Contains(holder) || (held.Count < limit && held.Add(holder)));
        }
    }

    public Task ReleaseAsync(TenantId tenant, LimitKind kind, string holder, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_holders.TryGetValue((tenant, kind), out var held))
            {
                held.Remove(holder);
            }
        }

        return Task.CompletedTask;
    }

    public Task<int> HeldAsync(TenantId tenant, LimitKind kind, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult(_holders.TryGetValue((tenant, kind), out var held) ? held.Count : 0);
        }
    }

    public Task<TimeSpan?> TakeAsync(TenantId tenant, int perMinute, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var (tokens, at) = _buckets.TryGetValue(tenant, out var b) ? b : (perMinute, now);

            // A clock behind the last taker's refills nothing rather than taking tokens back.
            var last = at > now ? at : now;
            var refilled = TokenBucket.Refilled(tokens, now - at, perMinute);
            if (refilled >= 1)
            {
                _buckets[tenant] = (refilled - 1, last);
                return Task.FromResult<TimeSpan?>(null);
            }

            _buckets[tenant] = (refilled, last);
            return Task.FromResult<TimeSpan?>(TokenBucket.RetryAfter(refilled, perMinute));
        }
    }
}
