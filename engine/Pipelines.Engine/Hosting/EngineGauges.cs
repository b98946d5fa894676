using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Pipelines.Containers.Warm;
using Pipelines.Harvest;
using Pipelines.Queue;
using Pipelines.Telemetry;

namespace Pipelines.Hosting;

/// <summary>
/// The instruments read when an exporter collects (a scrape), from this host's parts: the
/// harvester's figures, the warm pool's containers, the queue as <see cref="QueueSampler"/>
/// last read it and each tenant's pending tasks, and those it holds by reason, as the leading
/// <see cref="TaskDispatcher"/> last counted them. Each host has its own meter (the same name as <see cref="EngineMetrics"/>'s),
/// disposed when the host stops, so that a stopped host is no longer read.
/// </summary>
internal sealed class EngineGauges(Harvester? harvester = null, IWarmPool? pool = null, QueueSampler? queue = null, TaskDispatcher? dispatcher = null) : IHostedService, IDisposable
{
    private Meter? _meter;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _meter = new Meter(EngineMetrics.MeterName, EngineVersion.Current);
        EngineMetrics.StartAtZero(Pipelines.RunStore.HoldReasons.All);
        if (harvester is not null)
        {
            AddHarvest(_meter, harvester);
        }

        if (pool is not null)
        {
            AddWarm(_meter, pool);
        }

        if (queue is not null)
        {
            _meter.CreateObservableGauge("pipelines.queue.depth", () => queue.Latest.Select(q => new Measurement<long>(q.Depth, new KeyValuePair<string, object?>("queue", q.Queue))), "{job}", "Jobs waiting in a queue, not yet fetched by a worker (task, gather and async invocation jobs in default).");
            _meter.CreateObservableGauge("pipelines.queue.oldest.age", () => queue.Latest.Select(q => new Measurement<double>(q.OldestAgeSeconds, new KeyValuePair<string, object?>("queue", q.Queue))), "s", "How long the oldest job waiting in a queue has waited (0 when none waits).");
        }

        if (dispatcher is not null)
        {
            _meter.CreateObservableGauge("pipelines.tasks.pending", () => dispatcher.Pending.Select(p => new Measurement<long>(p.Pending, new KeyValuePair<string, object?>("tenant", p.Tenant.Value))), "{task}", "Tasks waiting in the run store for the dispatcher to release them to the workers, by tenant (reported by the process whose dispatcher leads).");
            _meter.CreateObservableGauge("pipelines.tasks.pending.held", () => dispatcher.Held.Select(h => new Measurement<long>(h.Held, new KeyValuePair<string, object?>("tenant", h.Tenant.Value), new KeyValuePair<string, object?>("reason", h.Reason))), "{task}", "Pending tasks the dispatcher holds back, by tenant and reason (quota, budget, or the workers' owner_load, policy, drain), as its last look left them (reported by the process whose dispatcher leads).");
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _meter?.Dispose();
        _meter = null;
    }

    private static void AddHarvest(Meter meter, Harvester harvester)
    {
        meter.CreateObservableGauge("pipelines.harvest.owner.cpu.utilization", () => harvester.Status().Latest?.OwnerFraction ?? 0, "1", "The share of the machine's CPU the owner used in the last sample, 0 to 1.");
        meter.CreateObservableGauge("pipelines.harvest.owner.memory.usage", () => harvester.Status().Latest?.OwnerMemory ?? 0, "By", "Memory the machine's owner holds (in use less our containers').");
        meter.CreateObservableGauge("pipelines.harvest.cpu.usage", () => harvester.Status().Latest?.OursCpu ?? 0, "{cpu}", "Cores our containers kept busy in the last sample.");
        meter.CreateObservableCounter("pipelines.harvest.cpu.time", () => harvester.Status().HarvestedCpuSeconds, "s", "CPU time our containers used on this machine since the worker started.");
        meter.CreateObservableGauge("pipelines.harvest.slots", () => harvester.Status().Allowed, "{task}", "Tasks the owner's load allows to run now.");
        meter.CreateObservableGauge("pipelines.harvest.suspended", () => harvester.Status().Suspended, "{attempt}", "Running tasks and function requests held suspended because the owner is busy.");
        meter.CreateObservableGauge("pipelines.harvest.idle.class", () => new Measurement<int>(1, new KeyValuePair<string, object?>("class", Pipelines.Containers.IdleCgroup.ClassOf(harvester.IdleMode))), "1", "How our containers' CPU class is set (class: idle, lowest_weight, normal, pending, off, unknown); the worker's log and /readyz say it in full.");
        meter.CreateObservableCounter("pipelines.harvest.vacated", () => (long)harvester.Status().Vacated, "{attempt}", "Tasks and function requests vacated (stopped and handed back) since the worker started.");
    }

    private static void AddWarm(Meter meter, IWarmPool pool)
    {
        meter.CreateObservableGauge("pipelines.warm.containers", () => Containers(pool.Stats()), "{container}", "Warm containers by what they serve (function or step) and state (idle, busy, starting).");
        meter.CreateObservableGauge("pipelines.warm.waiting", () => pool.Stats().GroupBy(s => EngineMetrics.WarmKind(s.Owner))
            .Select(g => new Measurement<long>(g.Sum(s => (long)s.Waiting), new KeyValuePair<string, object?>("kind", g.Key))), "{request}", "Requests waiting for a warm container.");
    }

    private static IEnumerable<Measurement<long>> Containers(IReadOnlyList<WarmPoolStats> stats)
    {
        // Every kind and state is reported, 0 included, so that a pool that empties reads 0 rather than vanishing.
        foreach (var kind in new[] { "function", "step" })
        {
            var mine = stats.Where(s => EngineMetrics.WarmKind(s.Owner) == kind).ToList();
            yield return Measurement("idle", mine.Sum(s => (long)(s.Warm - s.Busy)));
            yield return Measurement("busy", mine.Sum(s => (long)s.Busy));
            yield return Measurement("starting", mine.Sum(s => (long)s.Starting));

            Measurement<long> Measurement(string state, long value) =>
                new(value, new KeyValuePair<string, object?>("kind", kind), new KeyValuePair<string, object?>("state", state));
        }
    }
}
