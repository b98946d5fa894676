using Pipelines.Tenancy;

namespace Pipelines.Functions;

/// <summary>
/// Functions, their versions pinned to an image digest, and their invocations.
/// </summary>
/// <remarks>
/// Both stores keep one behaviour, checked by tests/Pipelines.Tests/Functions/FunctionStoreContract.cs:
/// <list type="bullet">
/// <item>A deploy makes a new version (the current one plus one, 1 for a new function) only when its content differs
/// from the current version's; concurrent deploys of one content make one version, of n contents n versions.</item>
/// <item>An invocation changes state only forward: queued or running to an ending, once; a second ending or a late
/// start is told false and writes nothing.</item>
/// <item>Reads of what does not exist find nothing (null, false, an empty list); deleting a function that does not
/// exist deletes nothing and says so with no versions. An invocation of a function that does not exist is refused with
/// <see cref="UnknownFunctionException"/>, one whose id exists with <see cref="ArgumentException"/>; nothing is written.</item>
/// <item>Names and ids compare and sort by ordinal (byte) order.</item>
/// </list>
/// A tenant is one namespace of functions: a name is unique within a tenant, two tenants may each
/// deploy the same name, and invocation ids are unique across all. A view of one tenant
/// (<see cref="For"/>) is held to the same rules as the store, and answers for another tenant's
/// function or invocation exactly as for a missing one (FunctionStoreIsolationContract). The whole
/// store (the engine's) names functions in the default tenant, finds invocations of every tenant by
/// id and lists every tenant's; the engine reaches another tenant's function by name through a view
/// of the record's tenant (<see cref="FunctionVersion.Tenant"/>, <see cref="InvocationRecord.Tenant"/>).
/// </remarks>
public interface IFunctionStore
{
    /// <summary>
    /// The store as <paramref name="scope"/> sees it: itself for all tenants; for one tenant, a view
    /// whose names are that tenant's, whose deploys and invocations are stamped with it, and whose
    /// reads, figures and pruning reach only its own. A view cannot be widened (<see cref="TenantScope.Narrow"/>).
    /// </summary>
    IFunctionStore For(TenantScope scope);

    /// <summary>At most this many invocations are deleted by one <see cref="PruneAsync"/>.</summary>
    public const int PruneBatch = 5000;

    /// <summary>
    /// Records a deploy: a new version when the content differs from the current version's,
    /// else the current version unchanged (<see cref="DeployResult.Created"/> false).
    /// </summary>
    Task<DeployResult> DeployAsync(FunctionSpec spec, string yaml, string imageDigest, string contentSha256, string deployedBy, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>A function's current version, or the given one; null when there is none.</summary>
    Task<FunctionVersion?> GetAsync(string name, int? version, CancellationToken cancellationToken);

    /// <summary>Every function's current version, by name.</summary>
    Task<IReadOnlyList<FunctionVersion>> ListAsync(CancellationToken cancellationToken);

    /// <summary>Every version of a function, newest first; empty when there is no such function.</summary>
    Task<IReadOnlyList<FunctionVersion>> VersionsAsync(string name, CancellationToken cancellationToken);

    /// <summary>Deletes a function with its versions and invocations; the versions it had, newest first, or empty when there was no such function.</summary>
    Task<IReadOnlyList<int>> DeleteAsync(string name, CancellationToken cancellationToken);

    /// <summary>
    /// Records an invocation as it starts (or is queued); what it ended with is left empty until
    /// <see cref="FinishAsync"/>. A view records it in its tenant; the whole store in the record's.
    /// </summary>
    Task AddInvocationAsync(InvocationRecord invocation, CancellationToken cancellationToken);

    /// <summary>
    /// A queued invocation's job takes it: true while it is queued, or running (a second delivery
    /// after a worker died; running it again writes the same output key), and the digest,
    /// algorithm version and route that serve it are recorded. False once it has ended, or when there is no such invocation.
    /// </summary>
    Task<bool> TryStartAsync(string id, FunctionVersion servedBy, string? route, CancellationToken cancellationToken);

    /// <summary>
    /// Says why a queued invocation waits (a tenant's quota: docs/tenants.md), for the caller who
    /// looks at it; <see cref="TryStartAsync"/> clears it. A running one goes back to queued with it
    /// (its job started it, then found no warm container its tenant's quota allows: it never ran).
    /// Nothing for one that has ended.
    /// </summary>
    Task HoldAsync(string id, string reason, CancellationToken cancellationToken);

    /// <summary>Records how an invocation ended, once: true for the call that ended it, false after (or when there is no such invocation).</summary>
    Task<bool> FinishAsync(string id, InvocationEnd end, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Records invocations that have ended, each once with its start and its end, in one write
    /// (<see cref="InvocationLog"/> batches the synchronous ones): those of a function that is no
    /// longer there (deleted meanwhile) and those whose id exists already are left out. Returns how many were written.
    /// </summary>
    Task<int> AddEndedAsync(IReadOnlyList<EndedInvocation> ended, CancellationToken cancellationToken);

    /// <summary>The invocation, or null.</summary>
    Task<InvocationRecord?> GetInvocationAsync(string id, CancellationToken cancellationToken);

    /// <summary>A function's latest invocations, newest first (then by id), at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<InvocationRecord>> ListInvocationsAsync(string function, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// The one query of invocation figures, per function, version, algorithm version and shadow
    /// (shadow copies apart), of one function or all, over what the retention keeps or since
    /// <paramref name="since"/>: requests, errors (every ended invocation that did not succeed),
    /// p50/p95 latency of the ended invocations (PostgreSQL's percentile_cont: linear between
    /// the two nearest), p95 without cold starts, and for shadow copies how many outputs equalled
    /// stable's answer. By function, then version newest first, then shadow copies after, then
    /// algorithm version (none last).
    /// </summary>
    Task<IReadOnlyList<InvocationStats>> StatsAsync(string? function, DateTimeOffset? since, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes at most <see cref="PruneBatch"/> invocations beyond the retention, oldest first:
    /// those that started before both <c>now - KeepFor</c> and the start of the Keep-th newest
    /// (ties at the cut stay). Returns how many went.
    /// </summary>
    Task<int> PruneAsync(InvocationRetention retention, DateTimeOffset now, CancellationToken cancellationToken);
}
