using Pipelines.Tenancy;

namespace Pipelines.Triggers;

/// <summary>
/// Registered workflows with triggers, the ledger of object versions (one entry per workflow,
/// bucket, key and ETag), the batches cut from it (one per run) and each trigger's poll
/// checkpoint and last error.
/// </summary>
/// <remarks>
/// Both stores keep one behaviour, checked by tests/Pipelines.Tests/Triggers/TriggerStoreContract.cs:
/// <list type="bullet">
/// <item>Exactly once: an object version is recorded once however often and by whomever it is reported (a deleted
/// one is revived by a new sighting as pending); a pending version moves to one batch only, whatever claims race;
/// a batch ends (started or failed) once.</item>
/// <item>One cycle of a trigger at a time: <see cref="TryLockAsync"/> is held by one caller until it is disposed.</item>
/// <item>What does not exist: reads find nothing (null, false, zero, empty); changes of a workflow that is not
/// registered change nothing (recording into one records nothing and says 0). A claim for a run id that names a
/// batch already is refused with <see cref="ArgumentException"/> and claims nothing.</item>
/// <item>Names and keys sort by ordinal (byte) order.</item>
/// </list>
/// A tenant is one namespace of workflows: a name is unique within a tenant, two tenants may each
/// register the same name, and run ids are unique across all. A view of one tenant
/// (<see cref="For"/>) is held to the same rules as the store, and answers for another tenant's
/// workflow or batch exactly as for a missing one (TriggerStoreIsolationContract). The whole store
/// (the engine's) names workflows in the default tenant and lists every tenant's; the engine reaches
/// another tenant's workflow by name through a view of the record's <see cref="RegisteredTrigger.Tenant"/>.
/// </remarks>
public interface ITriggerStore
{
    /// <summary>
    /// The store as <paramref name="scope"/> sees it: itself for all tenants; for one tenant, a view
    /// whose names are that tenant's, whose registrations are stamped with it and whose listings,
    /// batches and locks hold only its own. A view cannot be widened (<see cref="TenantScope.Narrow"/>).
    /// </summary>
    ITriggerStore For(TenantScope scope);

    /// <summary>
    /// Registers or updates a workflow (its first registration time is kept). Returns whether its
    /// trigger needs a baseline listing: a new registration, a changed trigger uri (objects still
    /// pending under the old uri are then left behind as dropped, and the checkpoint starts
    /// again), or a baseline that never finished. A view registers in its tenant; the whole store
    /// in the record's <see cref="RegisteredTrigger.Tenant"/>.
    /// </summary>
    Task<bool> UpsertAsync(RegisteredTrigger trigger, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Ends a registration's baseline listing: from now on the trigger's cycle runs, listing after <paramref name="startAfter"/>.</summary>
    Task CompleteBaselineAsync(string workflow, string? startAfter, DateTimeOffset now, long listed, CancellationToken cancellationToken);

    /// <summary>Whether the workflow's baseline listing finished; false for a workflow that is not registered.</summary>
    Task<bool> IsBaselineDoneAsync(string workflow, CancellationToken cancellationToken);

    /// <summary>Removes a registration with its ledger, batches and checkpoint (runs already started are not touched); false when there was none.</summary>
    Task<bool> RemoveAsync(string workflow, CancellationToken cancellationToken);

    /// <summary>Every registered workflow, by name.</summary>
    Task<IReadOnlyList<RegisteredTrigger>> ListAsync(CancellationToken cancellationToken);

    /// <summary>The registered workflow, or null.</summary>
    Task<RegisteredTrigger?> GetAsync(string workflow, CancellationToken cancellationToken);

    /// <summary>
    /// Records object versions (full keys) seen by <paramref name="source"/>. A version already
    /// in the ledger is left as it is, whoever reported it and however often, except one that was
    /// deleted before its run, which a new pending sighting makes pending again. A version's
    /// <see cref="LedgerObject.LandedAt"/> is kept as recorded (a revival that names one replaces it).
    /// Returns how many versions were new (or revived).
    /// </summary>
    Task<int> RecordAsync(string workflow, string bucket, IReadOnlyList<(LedgerObject Object, LedgerState State, string? Note)> objects, string source, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>An object was removed: its versions still pending will not get a run (claimed ones are not touched). Returns how many were pending.</summary>
    Task<int> MarkDeletedAsync(string workflow, string bucket, string key, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>The versions waiting for a run: how many, and when the newest of them was seen.</summary>
    Task<PendingObjects> PendingAsync(string workflow, CancellationToken cancellationToken);

    /// <summary>
    /// Claims up to <paramref name="max"/> pending versions, oldest seen first (then by key), for
    /// the run id given, and records the batch, at once, with when its oldest object was first seen
    /// and when it landed (<see cref="TriggerBatch.LandedAt"/>). Null when nothing was pending.
    /// </summary>
    Task<TriggerBatch?> ClaimAsync(string workflow, string runId, int max, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Batches claimed but not yet known to have a run (a process stopped, or one is still being submitted), oldest first.</summary>
    Task<IReadOnlyList<TriggerBatch>> OpenBatchesAsync(string workflow, CancellationToken cancellationToken);

    /// <summary>The versions a batch claimed (with their landed times), by key; empty for a run id that names no batch.</summary>
    Task<IReadOnlyList<LedgerObject>> BatchObjectsAsync(string runId, CancellationToken cancellationToken);

    /// <summary>Marks a claimed batch started (its run exists and is queued) or failed (it never will), once: false after, or for no such batch.</summary>
    Task<bool> FinishBatchAsync(string runId, bool started, string? error, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>The poll checkpoint of a trigger; all empty before its first listing or for a workflow that is not registered.</summary>
    Task<TriggerPollState> GetPollStateAsync(string workflow, CancellationToken cancellationToken);

    /// <summary>Saves what a poll did (a checkpoint it did not move is kept); a full listing also moves the reconciliation time.</summary>
    Task SavePollAsync(string workflow, PollOutcome poll, bool full, CancellationToken cancellationToken);

    /// <summary>Keeps the last error of a trigger's cycle for `pipelines triggers`; null clears it (its time stays).</summary>
    Task SaveErrorAsync(string workflow, string? error, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>One line per registered workflow, by name: its poll, its ledger's counts and its runs.</summary>
    Task<IReadOnlyList<TriggerSummary>> SummariesAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Takes the trigger's lock if it is free: one cycle of a trigger at a time across every
    /// trigger process that shares the store. Null when another holds it. The lock ends with the
    /// returned handle, or with the process that holds it.
    /// </summary>
    Task<IAsyncDisposable?> TryLockAsync(string workflow, CancellationToken cancellationToken);
}
