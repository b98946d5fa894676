using Pipelines.Model;
using Pipelines.Quotas;
using Pipelines.Tenancy;

namespace Pipelines.Containers.Warm;

/// <summary>How the engine talks to a warm container, which has no network.</summary>
public enum WarmMode
{
    /// <summary>
    /// The engine's static helper is the container's first process; for each request it runs
    /// the request's command with that request's files at /in and an empty /out, one request
    /// at a time. The image needs no change.
    /// </summary>
    Fork,

    /// <summary>
    /// The image's own long-lived process serves HTTP on the Unix socket
    /// <see cref="WarmLayout.HttpSocket"/>; up to <see cref="WarmSpec.Concurrency"/> requests at once.
    /// </summary>
    Http,
}

/// <summary>
/// Everything two requests must share to be served by one container. Containers are never
/// shared across <see cref="Owner"/>s: an owner is one function version
/// (<c>function:NAME@VERSION</c>) or one step of one run (<c>run:RUN/step:STEP</c>).
/// </summary>
public sealed record WarmSpec(
    string Owner,
    string ImageId,
    WarmMode Mode,
    IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string> Env,
    Resources Resources,
    IReadOnlyDictionary<string, string> Labels)
{
    /// <summary>Variables set in the container only, never logged or returned (as <see cref="ContainerSpec.Secrets"/>).</summary>
    public IReadOnlyDictionary<string, string> Secrets { get; init; } = new Dictionary<string, string>();

    /// <summary>Requests served at once by one container: 1 in fork mode, whatever is given, and up to this in http mode.</summary>
    public int Concurrency { get; init; } = 1;

    /// <summary>Containers kept warm while idle; 0 scales to zero.</summary>
    public int MinWarm { get; init; }

    /// <summary>The most containers of this owner at once.</summary>
    public int Max { get; init; } = 4;

    /// <summary>A container idle this long is stopped (never below <see cref="MinWarm"/>).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Requests that may wait for a busy container once every container up to <see cref="Max"/>
    /// is busy or starting; one more is refused with <see cref="PoolFullException"/>. A request
    /// that waits only for a container's start is not in this queue: 0 means no waiting line.
    /// </summary>
    public int MaxQueue { get; init; } = 100;

    /// <summary>
    /// The quotas of the folders its containers can write (<see cref="OutputLimits.For"/>, the one
    /// home of the rule), held while a request runs and, by the pool, between requests.
    /// </summary>
    public required OutputLimits Limits { get; init; }

    /// <summary>
    /// The tenant whose quota WarmContainers each of these containers takes a slot of, from before
    /// it starts until it is gone (a function's); null for containers no tenant quota counts (a run's step).
    /// </summary>
    public TenantId? Tenant { get; init; }
}

/// <summary>
/// Warm containers, per owner: started on demand up to <see cref="WarmSpec.Max"/>, kept at
/// <see cref="WarmSpec.MinWarm"/>, idled out, and replaced when one crashes, hangs or breaks
/// the protocol. One real implementation, on the Docker engine.
/// </summary>
internal interface IWarmPool : IAsyncDisposable
{
    /// <summary>
    /// A warm container of <paramref name="spec"/> for one request: waits while every container
    /// of the owner is busy and <see cref="WarmSpec.Max"/> are running, starts one otherwise.
    /// Throws <see cref="PoolFullException"/> when <see cref="WarmSpec.MaxQueue"/> already wait for a busy one,
    /// and <see cref="PipelinesException"/> when a container cannot be started (its reason).
    /// </summary>
    ValueTask<WarmLease> AcquireAsync(WarmSpec spec, CancellationToken cancellationToken);

    /// <summary>
    /// A container of <paramref name="spec"/> that is free now, or null (then <see cref="AcquireAsync"/>
    /// waits or starts one). A free container runs its image already, so a request it serves needs
    /// no look at the engine's images first: a per-file task's round trip to Docker is saved.
    /// </summary>
    WarmLease? TryAcquireFree(WarmSpec spec);

    /// <summary>Stops every container of an owner (a run ended, a function deleted or deployed again).</summary>
    Task RetireAsync(string owner, CancellationToken cancellationToken);

    /// <summary>
    /// Stops every container of the owners <paramref name="owner"/> selects (all steps of a run
    /// with no task left), for <paramref name="reason"/>. The pool's disposal waits for these
    /// stops, so a caller need not.
    /// </summary>
    Task RetireWhereAsync(Func<string, bool> owner, string reason);

    /// <summary>
    /// Starts containers of <paramref name="spec"/> ahead of its requests, up to
    /// <paramref name="count"/> (and <see cref="WarmSpec.Max"/>) started or starting: they serve
    /// the first requests as soon as those come, and idle out like any other if none does. A
    /// start that fails is logged; the requests' own starts meet the cause again.
    /// </summary>
    void Prewarm(WarmSpec spec, int count);

    /// <summary>Figures per owner, for the dashboard and the API.</summary>
    IReadOnlyList<WarmPoolStats> Stats();

    /// <summary>Whether fork-mode containers can start here (the engine's fork helper is where Docker:WarmHelper says).</summary>
    bool CanFork { get; }
}

/// <summary>
/// One request's hold on one warm container. In fork mode the three folders are host folders
/// bound in the container, empty when the lease is given: the caller puts the request's files
/// in <see cref="InDir"/> (and earlier steps' outputs under <see cref="StepsDir"/>), runs, then
/// reads what was left in <see cref="OutDir"/> (never trusting it: see OutputFolder). Disposing
/// the lease empties them and /tmp and gives the container back, or replaces it when it broke.
/// </summary>
public abstract class WarmLease : IAsyncDisposable
{
    /// <summary>Whether this request waited for its container to start (its latency includes the start).</summary>
    public virtual bool ColdStart => false;

    /// <summary>The Docker id of the container serving this request.</summary>
    public abstract string ContainerId { get; }

    /// <summary>Host folder seen at /in (read-only inside). Fork mode only.</summary>
    public abstract string InDir { get; }

    /// <summary>Host folder seen at /out (writable inside). Fork mode only.</summary>
    public abstract string OutDir { get; }

    /// <summary>Host folder seen at /steps (read-only inside). Fork mode only.</summary>
    public abstract string StepsDir { get; }

    /// <summary>
    /// Fork mode: makes the file /in/<paramref name="name"/> holding <paramref name="content"/>,
    /// readable by the container's user (mode 0644) and no one's to write: made in its final place
    /// with its final mode through the folder the container holds open, never through a link (a
    /// small request body, which the server holds in memory; docs/functions.md).
    /// </summary>
    public abstract void WriteInput(string name, ReadOnlySpan<byte> content);

    /// <summary>Fork mode: <see cref="OutDir"/> as the container holds it open from its start (read through it, never closed by the reader).</summary>
    internal abstract Storage.NoFollow.SafeDirectory OutFolder { get; }

    /// <summary>Fork mode: <see cref="InDir"/> as the container holds it open from its start (never closed by the user).</summary>
    internal abstract Storage.NoFollow.SafeDirectory InFolder { get; }

    /// <summary>
    /// Says that the request's /out is empty now (its processes are gone, and the engine removed
    /// by name all the stage-out's walk found there), so that the lease's end resets the folder
    /// without reading it again. Nothing is written in it after this, by the request or the engine.
    /// </summary>
    internal virtual void OutEmptied()
    {
    }

    /// <summary>
    /// Says that the request's /in is empty now: the engine removed by name all it put there (the
    /// container cannot write in it: a read-only bind of a folder of root's), so that the lease's
    /// end does not read it again. Nothing is put in it after this.
    /// </summary>
    internal virtual void InEmptied()
    {
    }

    /// <summary>
    /// Host folder seen at /run/pipelines (writable inside: the sockets), which the engine
    /// watches against the request's quotas as it watches /out; null when there is none.
    /// </summary>
    public virtual string? ControlDir => null;

    /// <summary>
    /// Fork mode: runs one process with <paramref name="command"/> (the program first) and
    /// <paramref name="env"/> added to the container's, in /out. A timeout kills the process and
    /// is reported as <see cref="ContainerResult.TimedOut"/>; every process the request started
    /// is gone when this returns. A container that dies or breaks the protocol throws
    /// <see cref="WarmContainerException"/> and is replaced.
    /// </summary>
    public abstract Task<ContainerResult> RunAsync(IReadOnlyList<string> command, IReadOnlyDictionary<string, string> env, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>
    /// Http mode: sends the request to the container's server. A timeout kills the container
    /// (<see cref="WarmContainerException"/> with TimedOut set).
    /// </summary>
    public abstract Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>The caller found the container unfit (for example its output broke a rule): it is replaced, not reused.</summary>
    public abstract void Discard(string reason);

    public abstract ValueTask DisposeAsync();
}

/// <summary>The container serving a request died, hung or broke the protocol; it has been replaced.</summary>
/// <remarks>
/// <paramref name="engineLost"/>: the container ended while the engine could not say how (its wait
/// failed: the engine restarted or went out of reach), an outage to wait out, not the algorithm's failure.
/// </remarks>
internal sealed class WarmContainerException(string message, bool timedOut = false, Exception? inner = null, bool engineLost = false)
    : PipelinesException(message, retryHelps: engineLost, inner)
{
    public bool TimedOut { get; } = timedOut;
}

/// <summary>Too many requests already wait for this owner's containers.</summary>
internal sealed class PoolFullException(string owner, int waiting)
    : PipelinesException($"{waiting} requests already wait for a warm container of {owner}", retryHelps: false)
{
    public string Owner { get; } = owner;
}

/// <summary>
/// No container could start for this request: its tenant's warm containers are at its quota
/// WarmContainers (<see cref="Refusal"/>). Not the function's failure: a synchronous request is
/// refused 429 with the quota's Retry-After, an async one waits and is tried again.
/// </summary>
internal sealed class WarmQuotaException(QuotaRefusal refusal)
    : PipelinesException($"refused by the tenant's quota {refusal.Quota}: {refusal.Detail}", retryHelps: false)
{
    public QuotaRefusal Refusal { get; } = refusal;
}

/// <summary>One owner's containers and requests at a moment.</summary>
/// <param name="Held">Why fewer than min_warm run, when its tenant's quota WarmContainers keeps one from starting; null otherwise.</param>
public sealed record WarmPoolStats(string Owner, int Warm, int Busy, int Starting, int Waiting, long Started, long Replaced, string? Held = null);

/// <summary>Paths inside a warm container, beside <see cref="ContainerLayout"/>.</summary>
internal static class WarmLayout
{
    /// <summary>The folder the engine and the container share for their sockets.</summary>
    public const string Control = "/run/pipelines";

    /// <summary>Where an http-mode image's server listens.</summary>
    public const string HttpSocket = Control + "/http.sock";

    /// <summary>Where the engine's fork helper is mounted, read-only.</summary>
    public const string Helper = "/.pipelines/warm";
}
