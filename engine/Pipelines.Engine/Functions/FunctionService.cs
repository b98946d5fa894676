using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Pipelines.Algorithms;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Queue;
using Pipelines.Quotas;
using Pipelines.Storage;
using Pipelines.Telemetry;
using Pipelines.Tenancy;
using Pipelines.Worker;

namespace Pipelines.Functions;

/// <summary>
/// What the API, the CLI and the async job do with functions: deploy (validate, pin the image,
/// record a version), delete, invoke now, or queue an invocation for a worker. An async
/// invocation is recorded before it is queued and once when it ends; a synchronous one once,
/// when it has ended, through the <see cref="InvocationLog"/>. A tenant's view (<see cref="For"/>)
/// names that tenant's functions; the engine's own paths (the async job, the warm keeper) take
/// the tenant from the record they hold.
/// </summary>
public sealed class FunctionService : IInvocationHandler
{
    private readonly InvocationLog store;
    private readonly IContainerRuntime runtime;
    private readonly FunctionInvoker invoker;
    private readonly FunctionsOptions options;
    private readonly ObjectStoreFactory stores;
    private readonly WorkerOptions worker;
    private readonly FunctionRouter router;
    private readonly ShadowRunner shadows;
    private readonly CanaryGuard guard;
    private readonly IInvocationQueue jobs;
    private readonly TimeProvider time;
    private readonly WarmKeeper? keeper;
    private readonly IWarmPool? pool;
    private readonly AlgorithmService? algorithms;
    private readonly IAlgorithmStore? catalog;
    private readonly TenantOptions? tenants;
    private readonly TenantQuotas? quotas;

    // Internal: only the engine's wiring (a factory, since DI takes public constructors only) and the tests build it, so its parts stay internal.
    internal FunctionService(
        InvocationLog store,
        IContainerRuntime runtime,
        FunctionInvoker invoker,
        FunctionsOptions options,
        ObjectStoreFactory stores,
        WorkerOptions worker,
        FunctionRouter router,
        ShadowRunner shadows,
        CanaryGuard guard,
        IInvocationQueue jobs,
        TimeProvider time,
        WarmKeeper? keeper = null,
        IWarmPool? pool = null,
        AlgorithmService? algorithms = null,
        IAlgorithmStore? catalog = null,
        TenantOptions? tenants = null,
        TenantQuotas? quotas = null)
    {
        this.store = store;
        this.runtime = runtime;
        this.invoker = invoker;
        this.options = options;
        this.stores = stores;
        this.worker = worker;
        this.router = router;
        this.shadows = shadows;
        this.guard = guard;
        this.jobs = jobs;
        this.time = time;
        this.keeper = keeper;
        this.pool = pool;
        this.algorithms = algorithms;
        this.catalog = catalog;
        this.tenants = tenants;
        this.quotas = quotas;
    }

    // What the service and its views share: the current versions read, and when to prune next.
    private sealed class Shared
    {
        public readonly ConcurrentDictionary<(TenantId Tenant, string Name), (FunctionVersion Version, long Until)> Current = new();
        public readonly ConcurrentDictionary<TenantId, FunctionService> Views = new();
        public long NextPrune;
        public long Changes;
    }

    private Shared _shared = new();

    // Null for the service over every tenant (the engine's); a view's tenant otherwise.
    private TenantId? _tenant;

    // A view's whole log (null for the whole service): pruning keeps Functions:KeepInvocations over every tenant.
    private InvocationLog? _whole;

    /// <summary>The tenant whose names this service's verbs address: a view's, or default for the whole service.</summary>
    private TenantId Home => _tenant ?? TenantId.Default;

    public IFunctionStore Store => store;

    /// <summary>
    /// The service as <paramref name="scope"/> sees it: itself for all tenants; for one tenant, the
    /// same service over that tenant's view of the store (deploys stamped with it, its functions and
    /// invocations only; another's answer as missing ones), made once per tenant and sharing the
    /// current-version cache, so that the invoke path pays nothing for it.
    /// </summary>
    public FunctionService For(TenantScope scope)
    {
        if (scope.Tenant is not { } tenant)
        {
            return _tenant is null ? this : throw new InvalidOperationException($"a view of tenant {_tenant} cannot reach {scope}: take the view from the engine's service");
        }

        if (_tenant is { } own)
        {
            return own == tenant ? this : throw new InvalidOperationException($"a view of tenant {own} cannot reach {scope}: take the view from the engine's service");
        }

        return _shared.Views.GetOrAdd(tenant, t => new FunctionService(
            store.For(TenantScope.Of(t)), runtime, invoker, options, stores, worker, router, shadows, guard, jobs, time, keeper, pool, algorithms, catalog, tenants, quotas)
        {
            _shared = _shared,
            _tenant = t,
            _whole = store,
        });
    }

    /// <summary>
    /// Where a tenant's async invocations keep their input and output: under its own output folder,
    /// <c>functions/</c> (docs/tenants.md), when it has one; Functions:Output otherwise (the default tenant of a server without tenants).
    /// </summary>
    public string OutputOf(TenantId tenant) =>
        tenants is { Configured: true } t && t.Exists(tenant) && t.Settings(tenant).Output is { } root ? root + "functions/" : options.Output;

    /// <summary>The gray release of a function that follows an algorithm's stable channel (its route and latest channel events), for the API and the dashboard; null for a pinned one.</summary>
    public async Task<(AlgorithmRoute Route, IReadOnlyList<ChannelEvent> Events)?> ReleaseAsync(FunctionVersion function, CancellationToken cancellationToken)
    {
        if (FunctionRouter.FollowedAlgorithm(function.Spec) is not { } algorithm || algorithms is null || catalog is null)
        {
            return null;
        }

        var scope = TenantScope.Of(function.Tenant);
        var route = await algorithms.For(scope).RouteAsync(algorithm, cancellationToken).ConfigureAwait(false);
        var events = await catalog.For(scope).EventsAsync(algorithm, AlgorithmService.EventsShown, cancellationToken).ConfigureAwait(false);
        return (route, events);
    }

    /// <summary>The warm pool's figures of these versions (each version's own owner and those of the algorithm versions that served it); none without a pool.</summary>
    public IReadOnlyList<(FunctionVersion Version, WarmPoolStats Stats)> WarmStats(IReadOnlyList<FunctionVersion> versions)
    {
        if (pool is null)
        {
            return [];
        }

        var stats = pool.Stats();
        return versions.SelectMany(v => stats.Where(s => FunctionVersion.IsOwnerOf(s.Owner, v.Tenant, v.Name, v.Version)).Select(s => (v, s))).ToList();
    }

    /// <summary>
    /// A function's current version as the invoke path reads it: from the store at most once per
    /// Functions:CurrentVersionCache per function (a deploy or delete through another process is
    /// seen within it), at once after a deploy or delete through this one; null when there is none.
    /// </summary>
    public async Task<FunctionVersion?> CurrentAsync(string name, CancellationToken cancellationToken)
    {
        var now = time.GetTimestamp();
        var key = (Home, name);
        if (_shared.Current.TryGetValue(key, out var known) && now < known.Until)
        {
            return known.Version;
        }

        var changes = Interlocked.Read(ref _shared.Changes);
        var current = await store.GetAsync(name, null, cancellationToken).ConfigureAwait(false);
        if (current is null)
        {
            _shared.Current.TryRemove(key, out _);
        }
        else if (Interlocked.Read(ref _shared.Changes) == changes)
        {
            // Kept only when no deploy or delete of this process came while it was read, which would make it old.
            _shared.Current[key] = (current, now + (long)(options.CurrentVersionCache.TotalSeconds * time.TimestampFrequency));
        }

        return current;
    }

    /// <summary>A deploy or delete through this process: the next invocation reads the store.</summary>
    private void Changed(string name)
    {
        Interlocked.Increment(ref _shared.Changes);
        _shared.Current.TryRemove((Home, name), out _);
    }

    /// <summary>
    /// Validates the file, resolves its image to a digest (as this tenant's: its algorithms, no image only
    /// other tenants pushed) and records a version (or finds the same content already current).
    /// </summary>
    public async Task<DeployResult> DeployAsync(string yaml, string source, string deployedBy, CancellationToken cancellationToken)
    {
        var spec = FunctionParser.Parse(yaml, source);
        // The tenant's resource quotas, the rule's one home (Tenancy/ResourceCeiling), at the function's own fields.
        if (ResourceCeiling.Problems(spec.Resources, "resources", (tenants ?? TenantOptions.None).Settings(Home).Quotas) is { Count: > 0 } over)
        {
            throw new FunctionInvalidException(source, over);
        }
        var digest = await AlgorithmService.PinAsync(algorithms, runtime, spec.Image, Home, cancellationToken).ConfigureAwait(false);
        var content = Hashing.Sha256Hex(Encoding.UTF8.GetBytes(spec.ToJson() + "\n" + digest));
        var result = await store.DeployAsync(spec, yaml, digest, content, deployedBy, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        Changed(spec.Name);
        if (result.Replaced is { } old)
        {
            // The old version's warm containers serve no one now: new requests go to the new version.
            await RetireAsync(spec.Name, [old], cancellationToken).ConfigureAwait(false);
        }

        // Warm means warm: min_warm containers start now, not at the first request (in a process that serves functions).
        if (keeper is not null)
        {
            await keeper.KeepAsync(result.Function, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    /// <summary>Stops the warm containers of function versions: their own, and one owner per algorithm version that served them.</summary>
    private async Task RetireAsync(string name, IReadOnlyList<int> versions, CancellationToken cancellationToken)
    {
        if (pool is null)
        {
            return;
        }

        var owners = pool.Stats().Select(s => s.Owner).Where(o => versions.Any(v => FunctionVersion.IsOwnerOf(o, Home, name, v)));
        foreach (var owner in owners.Union(versions.Select(v => FunctionVersion.OwnerOf(Home, name, v))).ToList())
        {
            await pool.RetireAsync(owner, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Deletes a function, its versions and invocations, and stops its warm containers; false when there is none.</summary>
    public async Task<bool> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        var versions = await store.DeleteAsync(name, cancellationToken).ConfigureAwait(false);
        Changed(name);
        await RetireAsync(name, versions, cancellationToken).ConfigureAwait(false);
        return versions.Count > 0;
    }

    /// <summary>A new invocation id: time-ordered, unique across processes.</summary>
    public static string NewId() => Guid.CreateVersion7().ToString("N");

    /// <summary>
    /// Runs one request now, recorded from start to end, on the version its route picks (stable,
    /// canary, or the pinned image); the output is left under <paramref name="outputFolder"/>.
    /// Returns the function version as served (its <see cref="FunctionVersion.AlgorithmVersion"/> and digest).
    /// </summary>
    public async Task<(string Id, InvocationOutcome Outcome, FunctionVersion Served)> InvokeAsync(FunctionVersion function, FunctionInput input, string? caller, string outputFolder, CancellationToken cancellationToken)
    {
        var id = NewId();
        using var span = EngineTracing.Start(EngineTracing.Invoke, ActivityKind.Server)?.SetTag("pipelines.function", function.Name).SetTag("pipelines.invocation.id", id);
        var routed = await router.RouteAsync(function, cancellationToken).ConfigureAwait(false);

        // Written once, when it has ended, in a batch off the request path (InvocationLog); the answer does not wait for it.
        var started = Record(id, routed.Serving, input, InvocationStatus.Running, isAsync: false, caller, time.GetUtcNow(), routed.Route);
        var outcome = await RunRoutedAsync(routed, input, id, caller, outputFolder, cancellationToken, end =>
            store.RecordAsync(new EndedInvocation(started, end, time.GetUtcNow()), CancellationToken.None).AsTask()).ConfigureAwait(false);
        await PruneIfDueAsync(cancellationToken).ConfigureAwait(false);
        return (id, outcome, routed.Serving);
    }

    /// <summary>
    /// Records a synchronous invocation that a quota of its tenant refused before its body was
    /// read (its input unknown: no hash, 0 bytes), as a full queue's refusal is recorded, and
    /// counts it; returns its id.
    /// </summary>
    public string RecordRefused(FunctionVersion function, string? caller, QuotaRefusal refusal)
    {
        var id = NewId();
        var now = time.GetUtcNow();
        var started = Record(id, function, NoInput, InvocationStatus.Running, isAsync: false, caller, now) with { InputSha256 = null };
        var error = $"refused by the tenant's {refusal.What}: {refusal.Detail}";
        Answered(function.Name, InvocationStatus.Refused, 429, 0, error);
        _ = store.RecordAsync(new EndedInvocation(started, new InvocationEnd(InvocationStatus.Refused, 429, null, null, null, null, 0, null, error), now), CancellationToken.None);
        return id;
    }

    private static readonly FunctionInput NoInput = new("", [], null, "", 0);

    /// <summary>
    /// The run of one routed invocation, for both the API and the async job: a shadow copy staged
    /// before the input is consumed, the invocation, its end recorded (<paramref name="record"/>;
    /// <paramref name="finish"/> for one that ran, when given), then the shadow copy queued with
    /// stable's answer and, after a canary's invocation, the guard's check.
    /// </summary>
    private async Task<InvocationOutcome> RunRoutedAsync(
        RoutedInvocation routed, FunctionInput input, string id, string? caller, string outputFolder, CancellationToken cancellationToken,
        Func<InvocationEnd, Task> record, Func<InvocationOutcome, Task>? finish = null, Func<QuotaRefusal, Task>? held = null)
    {
        var shadow = routed is { ShadowTo: { } to, Algorithm: { } algorithm }
            ? await shadows.StageAsync(to, input, id, caller, algorithm, cancellationToken).ConfigureAwait(false)
            : null;
        InvocationOutcome outcome;
        var clock = Stopwatch.StartNew();
        try
        {
            outcome = await invoker.InvokeAsync(routed.Serving, input, id, outputFolder, synchronous: finish is null, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // An outage or the unforeseen: still recorded, then answered by the caller.
            var end = Unforeseen(e);
            Answered(routed.Serving.Name, end.Status, end.HttpStatus, clock.Elapsed.TotalSeconds, end.Error);
            await record(end).ConfigureAwait(false);
            await DiscardAsync(shadow, "stable's run ended with an error: " + PipelinesException.Describe(e)).ConfigureAwait(false);
            throw;
        }
        catch (OperationCanceledException)
        {
            await record(new InvocationEnd(InvocationStatus.Failed, 499, null, null, null, null, 0, null, "the caller went away before the answer")).ConfigureAwait(false);
            await DiscardAsync(shadow, "the caller went away before stable's answer").ConfigureAwait(false);
            throw;
        }

        if (outcome.Quota is { } quota && held is not null)
        {
            // No warm container its tenant's quota allows (WarmContainers): it never ran, and waits rather than ends.
            await DiscardAsync(shadow, $"stable's run waits for its tenant's quota {quota.Quota}").ConfigureAwait(false);
            await held(quota).ConfigureAwait(false);
            return outcome;
        }

        Answered(routed.Serving.Name, outcome.Status, outcome.HttpStatus, outcome.LatencyMs / 1000, outcome.Error);
        Activity.Current?.SetTag("pipelines.function.cold_start", outcome.ColdStart);
        await (finish is null ? record(outcome.ToEnd()) : finish(outcome)).ConfigureAwait(false);
        if (shadow is not null)
        {
            await shadows.EnqueueAsync(shadow, outcome).ConfigureAwait(false);
        }

        if (routed is { Route: Routes.Canary, Algorithm: { } route })
        {
            await guard.CheckAsync(routed.Serving, route, cancellationToken).ConfigureAwait(false);
        }

        return outcome;
    }

    /// <summary>An invocation was answered: counted by function and outcome, and said on its span.</summary>
    private static void Answered(string function, InvocationStatus status, int code, double seconds, string? error)
    {
        var outcome = InvocationStatuses.Name(status);
        EngineMetrics.Invoked(function, outcome, code, seconds);
        Activity.Current?.SetTag("pipelines.function.outcome", outcome).SetTag("http.response.status_code", code);
        Activity.Current.Failed(status == InvocationStatus.Succeeded ? null : error ?? outcome);
    }

    private Task DiscardAsync(ShadowCopy? shadow, string why) =>
        shadow is null ? Task.CompletedTask : shadows.Discard(shadow, why);

    /// <summary>How an invocation that threw is recorded: an outage is a 503, anything else a 500, with its description.</summary>
    internal static InvocationEnd Unforeseen(Exception e) =>
        new(InvocationStatus.Failed, e is PipelinesException { RetryHelps: true } ? 503 : 500, null, null, null, null, 0, null, PipelinesException.Describe(e));

    /// <summary>
    /// Stores the input in the tenant's function output location (<see cref="OutputOf"/>) under
    /// &lt;name&gt;/&lt;id&gt;/in/, records the invocation queued and enqueues its job.
    /// </summary>
    public async Task<string> QueueAsync(FunctionVersion function, FunctionInput input, string? caller, CancellationToken cancellationToken)
    {
        var id = NewId();
        var location = stores.Open(OutputOf(function.Tenant));
        foreach (var file in input.Files)
        {
            var key = location.Key(InputKey(function.Name, id, file.Name));
            await (file.Content is { } content
                ? location.Store.PutAsync(key, content, ContentTypes.Binary, cancellationToken)
                : location.Store.UploadAsync(key, file.Path, cancellationToken)).ConfigureAwait(false);
        }

        var manifest = JsonSerializer.SerializeToUtf8Bytes(new QueuedInput(input.Files.Select(f => f.Name).ToList(), input.ContentType, input.Sha256, input.Bytes), FunctionsJson.Default.QueuedInput);
        await location.Store.PutAsync(location.Key(ManifestKey(function.Name, id)), manifest, "application/json", cancellationToken).ConfigureAwait(false);
        // Recorded waiting, with the caller's trace: the dispatcher releases it by fair share (docs/decisions.md), and
        // its job carries that trace (a job parameter), so the worker's run of it joins the caller's.
        var queued = Record(id, function, input, InvocationStatus.Queued, isAsync: true, caller, time.GetUtcNow()) with { TraceParent = EngineTracing.CurrentParent() };
        await store.AddInvocationAsync(queued, cancellationToken).ConfigureAwait(false);
        await jobs.ChangedAsync(cancellationToken).ConfigureAwait(false);
        return id;
    }

    /// <summary>
    /// The async job's work, safe to repeat (Hangfire delivers at least once): an ended
    /// invocation is left alone, a second run writes the same output key, and the end is recorded once.
    /// </summary>
    public async Task RunQueuedAsync(string id, string? traceParent, CancellationToken cancellationToken)
    {
        using var span = EngineTracing.StartUnder(EngineTracing.Invoke, traceParent, ActivityKind.Consumer)?.SetTag("pipelines.invocation.id", id);
        var record = await store.GetInvocationAsync(id, cancellationToken).ConfigureAwait(false);
        if (record is null || record.Status is not (InvocationStatus.Queued or InvocationStatus.Running))
        {
            return;
        }

        span?.SetTag("pipelines.function", record.Function);

        // The function is the invocation's tenant's: the same name in another tenant is another function.
        var function = await store.For(TenantScope.Of(record.Tenant)).GetAsync(record.Function, record.Version, cancellationToken).ConfigureAwait(false);
        if (function is null)
        {
            return;
        }

        // The tenant's budget, running and rate quotas: past them it stays queued, says why, and is tried again (never failed by a quota or a budget).
        if (quotas is not null && await quotas.AdmitInvocationAsync(record.Tenant, id, cancellationToken).ConfigureAwait(false) is { } refused)
        {
            await HoldAsync(id, traceParent, refused, cancellationToken).ConfigureAwait(false);
            return;
        }

        try
        {
            await RunAdmittedAsync(id, traceParent, record, function, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (quotas is not null)
            {
                await quotas.EndInvocationAsync(record.Tenant, id).ConfigureAwait(false);
            }

            // Its worker slot is free: the dispatcher fills it now.
            await jobs.ChangedAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>An async invocation a quota of its tenant stopped for now: it stays (or goes back to) queued, says why and when it is tried again, and is.</summary>
    private async Task HoldAsync(string id, string? traceParent, QuotaRefusal refused, CancellationToken cancellationToken)
    {
        var again = time.GetUtcNow() + refused.RetryAfter;
        // The next try is queued before the hold is said: a crash between the two leaves it waiting, never lost.
        jobs.Schedule(id, traceParent, refused.RetryAfter);
        await store.HoldAsync(id, $"held by the tenant's {refused.What} ({refused.Detail}); tried again at {again:u}", cancellationToken).ConfigureAwait(false);
    }

    private async Task RunAdmittedAsync(string id, string? traceParent, InvocationRecord record, FunctionVersion function, CancellationToken cancellationToken)
    {
        // Routed when it runs, not when it was queued: a canary aborted meanwhile serves it no more.
        var routed = await router.RouteAsync(function, cancellationToken).ConfigureAwait(false);
        if (!await store.TryStartAsync(id, routed.Serving, routed.Route, cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        var location = stores.Open(OutputOf(record.Tenant));
        var scratch = Path.Combine(worker.Scratch, "functions", id + "-" + Guid.NewGuid().ToString("N")[..8]);
        var inDir = Path.Combine(scratch, "in");
        var outDir = Path.Combine(scratch, "out");
        Directory.CreateDirectory(inDir);
        Directory.CreateDirectory(outDir);
        try
        {
            var manifest = JsonSerializer.Deserialize(await location.Store.ReadAllAsync(location.Key(ManifestKey(function.Name, id)), cancellationToken).ConfigureAwait(false), FunctionsJson.Default.QueuedInput)!;
            var files = new List<InputPart>();
            foreach (var name in manifest.Files)
            {
                var path = Path.Combine(inDir, name);
                var digest = await location.Store.DownloadAsync(location.Key(InputKey(function.Name, id, name)), path, cancellationToken).ConfigureAwait(false);
                files.Add(new InputPart(name, path, digest.Size));
            }

            var input = new FunctionInput(inDir, files, manifest.ContentType, manifest.Sha256, manifest.Bytes);
            await RunRoutedAsync(routed, input, id, record.Caller, outDir, cancellationToken, end => store.FinishAsync(id, end, time.GetUtcNow(), CancellationToken.None), async outcome =>
            {
                if (outcome.OutputPath is not null)
                {
                    await location.Store.UploadAsync(location.Key(OutputKey(function.Name, id)), outcome.OutputPath, outcome.ContentType ?? ContentTypes.Binary, cancellationToken).ConfigureAwait(false);
                }

                await store.FinishAsync(id, outcome.ToEnd(), time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
            }, refused => HoldAsync(id, traceParent, refused, cancellationToken)).ConfigureAwait(false);
            await PruneIfDueAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            NoFollow.DeleteTree(scratch);
        }
    }

    /// <summary>Records that an async invocation's job gave up (its outage outlasted the retries).</summary>
    public Task GiveUpAsync(string id, string reason, CancellationToken cancellationToken) =>
        store.FinishAsync(id, new InvocationEnd(InvocationStatus.Failed, 503, null, null, null, null, 0, null, reason), time.GetUtcNow(), cancellationToken);

    /// <summary>Copies an async invocation's stored output to a local file.</summary>
    public async Task DownloadOutputAsync(InvocationRecord record, string localPath, CancellationToken cancellationToken)
    {
        var location = stores.Open(OutputOf(record.Tenant));
        await location.Store.DownloadAsync(location.Key(OutputKey(record.Function, record.Id)), localPath, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Removes a request's scratch folder, never following a link a container may have left in it.</summary>
    public static void DeleteScratch(string folder) => NoFollow.DeleteTree(folder);

    /// <summary>The keys of an async invocation under its tenant's function output location (<see cref="OutputOf"/>).</summary>
    public static string InputKey(string function, string id, string file) => $"{function}/{id}/in/{file}";

    public static string ManifestKey(string function, string id) => $"{function}/{id}/input.json";

    public static string OutputKey(string function, string id) => $"{function}/{id}/output";

    /// <summary>Prunes at most one bounded batch, at most once per Functions:PruneInterval in this process.</summary>
    private async Task PruneIfDueAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var due = Interlocked.Read(ref _shared.NextPrune);
        if (now.UtcTicks < due || Interlocked.CompareExchange(ref _shared.NextPrune, (now + options.PruneInterval).UtcTicks, due) != due)
        {
            return;
        }

        // The retention is the whole store's (Functions:KeepInvocations over every tenant), as before tenants.
        await (_whole ?? store).PruneAsync(options.Retention, now, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>An invocation's row as it starts: the function version as served (its digest and algorithm version) and its route.</summary>
    internal static InvocationRecord Record(
        string id, FunctionVersion function, FunctionInput input, InvocationStatus status, bool isAsync, string? caller, DateTimeOffset now, string? route = null, string? shadowOf = null) => new(
        id, function.Name, function.Version, function.ImageDigest, status, isAsync, input.Sha256, input.Bytes,
        null, null, null, null, null, null, null, now, null, null, caller, function.AlgorithmVersion, route, shadowOf)
        {
            Tenant = function.Tenant,
        };

    internal sealed record QueuedInput(List<string> Files, string? ContentType, string Sha256, long Bytes);
}
