using Pipelines.Tenancy;

namespace Pipelines.Algorithms;

/// <summary>
/// The algorithm catalog: versions (who pushed what digest, when), channels (stable, canary) with
/// their history, and the loads workers did. The image bytes are in the object store
/// (<see cref="AlgorithmService"/>); the catalog orders the changes of a digest's versions and
/// its tarball.
/// </summary>
/// <remarks>
/// Both stores keep one behaviour, checked by tests/Pipelines.Tests/Algorithms/AlgorithmStoreContract.cs:
/// <list type="bullet">
/// <item>One digest at a time: an add's <c>ensureTarball</c>, a delete's <c>deleteTarball</c> and the
/// version rows they go with happen under the digest's lock, so a push and the delete of the digest's last version
/// never interleave (the tarball is never removed from under a version that was just added); other digests do not wait.</item>
/// <item>A version is immutable: adding one that exists records nothing and says false. The first version of a name
/// becomes its stable channel. A version a channel names cannot be deleted; a channel names only a version that exists.</item>
/// <item>What does not exist: reads find nothing (null or an empty list); deleting a version that does not exist deletes
/// nothing (null) and touches no tarball. A failed tarball callback records nothing.</item>
/// <item>Names and versions sort by ordinal (byte) order.</item>
/// </list>
/// A tenant is one namespace of algorithms: a name is unique within a tenant and two tenants may
/// each push the same name. A view of one tenant (<see cref="For"/>) is held to the same rules as the
/// store, and answers for another tenant's algorithm exactly as for a missing one
/// (AlgorithmStoreIsolationContract). Images stay content-addressed: a digest's lock, and whether a
/// delete leaves its tarball to another version, reach every tenant's versions. The whole store (the
/// engine's) names algorithms in the default tenant and lists every tenant's; the engine reaches
/// another tenant's algorithm by name through a view of that tenant.
/// </remarks>
public interface IAlgorithmStore
{
    /// <summary>
    /// The store as <paramref name="scope"/> sees it: itself for all tenants; for one tenant, a view
    /// whose names are that tenant's, whose versions, channel events and loads are stamped with it,
    /// and whose listings reach only its own. A view cannot be widened (<see cref="TenantScope.Narrow"/>).
    /// </summary>
    IAlgorithmStore For(TenantScope scope);

    /// <summary>The version, or null.</summary>
    Task<AlgorithmVersion?> GetAsync(string name, string version, CancellationToken cancellationToken);

    /// <summary>Every version, of one algorithm or of all: by name, newest pushed first within a name, then by version.</summary>
    Task<IReadOnlyList<AlgorithmVersion>> ListAsync(string? name, CancellationToken cancellationToken);

    /// <summary>The channels, of one algorithm or of all: by name, stable before canary.</summary>
    Task<IReadOnlyList<AlgorithmChannel>> ChannelsAsync(string? name, CancellationToken cancellationToken);

    /// <summary>
    /// Records a version. Under the digest's lock, <paramref name="ensureTarball"/> makes sure the
    /// tarball is in the object store (a delete of the digest's last version cannot remove it in
    /// between). Returns false, recording nothing, when the version exists. The first version of
    /// a name becomes its stable channel. With <paramref name="storedBytes"/> (the tenant's quota
    /// StoredBytes), a version whose image the tenant does not have yet and whose size would take
    /// the tenant's images (each digest once) past it is refused with
    /// <see cref="Tenancy.QuotaExceededException"/> before <paramref name="ensureTarball"/> runs; the
    /// sum and the insert are under a lock per tenant, so two pushes at once cannot both pass.
    /// </summary>
    Task<bool> AddAsync(AlgorithmVersion version, Func<CancellationToken, Task> ensureTarball, CancellationToken cancellationToken, long? storedBytes = null);

    /// <summary>
    /// Removes a version; when it was the last of its digest, <paramref name="deleteTarball"/>
    /// removes the image from the object store under the digest's lock, before the version goes
    /// (a failure there keeps the version). Returns null when there is no such version. A version
    /// a channel names is refused (<see cref="PipelinesException"/>).
    /// </summary>
    Task<AlgorithmVersion?> DeleteAsync(string name, string version, Func<string, CancellationToken, Task> deleteTarball, CancellationToken cancellationToken);

    /// <summary>
    /// Points a channel at a version (which must exist, else <see cref="PipelinesException"/>),
    /// or removes the channel when <paramref name="version"/> is null, and records
    /// <paramref name="recorded"/> with the change, at once. With <paramref name="onlyIfVersion"/>
    /// a removal happens only while the channel still names that version (the guard's rollback
    /// never ends a canary set after it looked). Returns whether the channel changed; an event is
    /// recorded only then.
    /// </summary>
    Task<bool> SetChannelAsync(
        string name, string channel, string? version, int percent, bool shadow, string by, DateTimeOffset now, ChannelEvent? recorded, string? onlyIfVersion, CancellationToken cancellationToken);

    /// <summary>The latest channel changes of one algorithm (or of all), newest first, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<ChannelEvent>> EventsAsync(string? name, int limit, CancellationToken cancellationToken);

    /// <summary>The stable and canary versions of an algorithm with their digests, read at once; null when it has no stable version.</summary>
    Task<AlgorithmRoute?> RouteAsync(string name, CancellationToken cancellationToken);

    /// <summary>
    /// The tenants in this store's scope whose versions name <paramref name="digest"/>, by name; empty
    /// when none does. What <see cref="AlgorithmService.CheckImageAccessAsync"/> asks the whole store.
    /// </summary>
    Task<IReadOnlyList<TenantId>> DigestTenantsAsync(string digest, CancellationToken cancellationToken);

    /// <summary>Records a worker's load (or pull) of an image.</summary>
    Task RecordLoadAsync(ImageLoad load, CancellationToken cancellationToken);

    /// <summary>The latest loads, of one digest or of all, newest first, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<ImageLoad>> LoadsAsync(string? digest, int limit, CancellationToken cancellationToken);
}
