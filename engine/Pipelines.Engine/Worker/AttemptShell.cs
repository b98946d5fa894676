using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Harvest;
using Pipelines.Model;

namespace Pipelines.Worker;

/// <summary>
/// The attempt shell: the one home of what an attempt of other people's code goes through, for a
/// batch step (a container of its own, or with <c>reuse: true</c> a request to a warm container of
/// its run's step) and a function request (fork or http mode). In order: the harvester's
/// admission (a function request waits for room; a step runs in its task's) and its vacate; the
/// image on the engine; a warm container leased (or a container started by the runtime); the run
/// watched for a user's cancel, the quotas of every host folder it can write and their disk's free
/// space (<see cref="AttemptWatch"/>), under its timeout; and every ending sorted into an
/// <see cref="AttemptEnd{T}"/>: ran to its end, or stopped with the reason. Only an outage (an
/// exception whose RetryHelps is true) and the caller's own cancellation are thrown. The callers
/// turn the end into their record, a provenance row (<see cref="StepLoop"/>) or an invocation
/// (Functions.FunctionInvoker); Hangfire's giving up on a job is decided once, in Queue.EndWhenJobFails.
/// </summary>
internal sealed class AttemptShell(IContainerRuntime runtime, AttemptWatch watch, WorkerOptions options, IWarmPool? pool = null, Harvester? harvester = null)
{
    /// <summary>Whether this process can serve attempts from warm containers (it has a pool, on a Docker engine).</summary>
    public bool CanWarm => pool is not null;

    /// <summary>
    /// Whether a step's tasks can be requests to warm containers here: a pool, and the fork helper
    /// its containers start with. Null when they can; else why not, for the step that took
    /// reuse by default and runs a container per task instead.
    /// </summary>
    public string? WhyNoWarmSteps => pool switch
    {
        null => "this worker has no warm pool (it needs the Docker engine)",
        { CanFork: false } => "this worker has no fork helper for warm containers (build it with scripts/build-native, or set Docker:WarmHelper)",
        _ => null,
    };

    /// <summary>One attempt in a container of its own: the runtime creates, starts, waits for and removes it.</summary>
    public Task<AttemptEnd<ContainerResult>> RunAsync(Attempt attempt, ContainerSpec container, CancellationToken ct) =>
        AdmittedAsync(attempt, async (vacate, token) =>
        {
            var outDir = container.Mounts.Single(m => m.ContainerPath == ContainerLayout.Out).HostPath;
            var plan = new AttemptWatch.Plan(attempt.RunId, new FolderQuota([new(outDir, ContainerLayout.Out)], attempt.Limits, $"the worker's scratch disk ({options.Scratch})"));
            var (result, stop) = await watch.RunAsync(plan, vacate, t => runtime.RunAsync(container, t), token).ConfigureAwait(false);
            return new AttemptEnd<ContainerResult>(result, stop);
        }, ct);

    /// <summary>
    /// One request to a warm container of <see cref="Attempt.Warm"/>: <paramref name="request"/>
    /// puts its inputs in the lease's folders and runs it (fork) or sends it (http), given a token
    /// that stops it. The lease is held by the returned end until it is disposed.
    /// </summary>
    public Task<AttemptEnd<T>> RunAsync<T>(Attempt attempt, Func<WarmLease, CancellationToken, Task<T>> request, CancellationToken ct)
        where T : class
    {
        var spec = attempt.Warm ?? throw new ArgumentException("a request to a warm container needs the pool's spec (Attempt.Warm)", nameof(attempt));
        return AdmittedAsync(attempt, (vacate, token) => WarmAsync(attempt, spec, vacate, request, token), ct);
    }

    /// <summary>
    /// The harvester's part: a function request waits for room (at most Harvest:AdmissionHold) and
    /// is refused without it; a step runs in its task's admission. Either way the attempt can be
    /// vacated while it runs: the harvester cancels <c>vacate</c>.
    /// </summary>
    private async Task<AttemptEnd<T>> AdmittedAsync<T>(Attempt attempt, Func<CancellationTokenSource, CancellationToken, Task<AttemptEnd<T>>> run, CancellationToken ct)
        where T : class
    {
        using var vacate = new CancellationTokenSource();
        long Memory() => attempt.MemoryBytes;
        IDisposable? held = null;
        if (harvester is not null && attempt.AdmitFirst)
        {
            held = await harvester.AdmitRequestAsync(vacate, Memory, harvester.AdmissionHold, ct).ConfigureAwait(false);
            if (held is null)
            {
                return AttemptEnd<T>.Stopped(
                    AttemptStopKind.NotAdmitted,
                    $"this worker lends no capacity now ({harvester.Why()}); waited Harvest:AdmissionHold ({harvester.AdmissionHold.TotalSeconds:0.#} s); try again later");
            }
        }
        else if (harvester is not null)
        {
            held = harvester.Running(vacate, Memory);
        }

        using (held)
        {
            return await run(vacate, ct).ConfigureAwait(false);
        }
    }

    private async Task<AttemptEnd<T>> WarmAsync<T>(Attempt attempt, WarmSpec spec, CancellationTokenSource vacate, Func<WarmLease, CancellationToken, Task<T>> request, CancellationToken ct)
        where T : class
    {
        if (pool is null)
        {
            return AttemptEnd<T>.Stopped(AttemptStopKind.NotStarted, "this worker has no warm pool (it needs the Docker engine)");
        }

        ImageArrival? image = null;
        WarmLease lease;
        using (var starting = CancellationTokenSource.CreateLinkedTokenSource(ct, vacate.Token))
        {
            try
            {
                // A free container runs the image already. Else, as a container of its own would:
                // a pinned image this engine lacks is loaded or pulled first, once per digest.
                if (pool.TryAcquireFree(spec) is { } free)
                {
                    lease = free;
                }
                else
                {
                    image = await runtime.EnsureImageAsync(spec.ImageId, starting.Token, attempt.RecentlySeenWillDo, attempt.ImageName).ConfigureAwait(false);
                    lease = await pool.AcquireAsync(spec, starting.Token).ConfigureAwait(false);
                }
            }
            catch (PoolFullException e)
            {
                return AttemptEnd<T>.Stopped(AttemptStopKind.QueueFull, e.Message);
            }
            catch (WarmQuotaException e)
            {
                return new AttemptEnd<T>(null, new AttemptStop(AttemptStopKind.TenantQuota, e.Message) { Quota = e.Refusal });
            }
            catch (PipelinesException e) when (!e.RetryHelps)
            {
                return AttemptEnd<T>.Stopped(AttemptStopKind.NotStarted, e.Message);
            }
            catch (OperationCanceledException) when (vacate.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                return new AttemptEnd<T>(null, AttemptStop.Vacated);
            }
        }

        try
        {
            var (result, stop) = await watch.RunAsync(Plan(attempt, spec, lease), vacate, t => request(lease, t), ct).ConfigureAwait(false);
            if (stop is { Kind: AttemptStopKind.OverQuota } && spec.Mode == WarmMode.Http)
            {
                // An http server's own folder holds its socket and cannot be emptied under it: the container is replaced.
                lease.Discard(stop.Reason);
            }

            return new AttemptEnd<T>(result, stop, lease, image);
        }
        catch (WarmContainerException e) when (!e.RetryHelps)
        {
            // The pool has replaced the container; the request fails with the reason. One that
            // ended while the engine could not say how (a Docker restart) is the engine's outage,
            // not the request's: it goes on, below, to be waited out and delivered again.
            return new AttemptEnd<T>(null, new AttemptStop(AttemptStopKind.Broken, e.Message) { TimedOut = e.TimedOut }, lease, image);
        }
        catch
        {
            await lease.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>What a warm request is watched for (<see cref="FolderQuota.ForWarm"/>), and the run's cancel for a batch step.</summary>
    private static AttemptWatch.Plan Plan(Attempt attempt, WarmSpec spec, WarmLease lease) =>
        new(attempt.RunId, FolderQuota.ForWarm(spec.Mode == WarmMode.Fork ? lease.OutDir : null, lease.ControlDir, attempt.Limits));
}
