using Pipelines.Model;
using Pipelines.Queue;
using Pipelines.Storage;
using Pipelines.Tenancy;

namespace Pipelines.Triggers;

/// <summary>What `pipelines register` did.</summary>
public sealed record Registration(RegisteredTrigger Trigger, bool Listed, long Existing, bool ProcessExisting);

/// <summary>
/// Registers a workflow with a trigger block: validate, record it, take the baseline (the objects
/// already under trigger.uri are not new work, unless asked), and add the recurring job. The
/// engine's registrar works in the default tenant; <see cref="For"/> gives one that registers,
/// checks locations and unregisters in another (docs/tenants.md).
/// </summary>
public sealed class TriggerRegistrar
{
    private readonly ITriggerStore ledger;
    private readonly ObjectStoreFactory stores;
    private readonly IRecurringJobs recurring;
    private readonly TriggerOptions options;
    private readonly Runs.LocalRoots localRoots;
    private readonly TenantOptions tenants;
    private readonly TimeProvider time;

    // Internal: only the engine's wiring (a factory, since DI takes public constructors only) and the tests build it, so its parts stay internal.
    internal TriggerRegistrar(
        ITriggerStore ledger,
        ObjectStoreFactory stores,
        IRecurringJobs recurring,
        TriggerOptions options,
        Runs.LocalRoots localRoots,
        TenantOptions tenants,
        TimeProvider time)
    {
        this.ledger = ledger;
        this.stores = stores;
        this.recurring = recurring;
        this.options = options;
        this.localRoots = localRoots;
        this.tenants = tenants;
        this.time = time;
    }

    private TenantId _tenant = TenantId.Default;

    /// <summary>The registrar of <paramref name="tenant"/>: its workflows, its locations, its recurring jobs.</summary>
    public TriggerRegistrar For(TenantId tenant) =>
        new(ledger.For(TenantScope.Of(tenant)), stores, recurring, options, localRoots, tenants, time) { _tenant = tenant };

    public async Task<Registration> RegisterAsync(string yaml, string source, string? baseDirectory, IReadOnlyList<string> overrides, bool processExisting, CancellationToken cancellationToken)
    {
        var workflow = localRoots.Parse(yaml, source, baseDirectory, overrides);

        // input.uri, output.uri and trigger.uri must be this tenant's and its steps within its quotas (400 naming the field), before anything is listed.
        TenantLocations.Check(workflow, _tenant, tenants);
        ResourceCeiling.Check(workflow, _tenant, tenants);
        var spec = workflow.Trigger
            ?? throw new PipelinesException($"{source} has no trigger block: there is nothing to register (`pipelines run` runs it once)", retryHelps: false);
        if (!spec.Uri.StartsWith("s3://", StringComparison.Ordinal))
        {
            throw new PipelinesException($"{source}: trigger.uri '{spec.Uri}' is not s3://bucket/prefix/: a trigger watches a bucket", retryHelps: false);
        }

        if (workflow.Input.Samplesheet is not null)
        {
            throw new PipelinesException($"{source}: a triggered workflow cannot use input.samplesheet: its runs take the new objects under trigger.uri", retryHelps: false);
        }

        var location = stores.Open(spec.Uri);
        var bucket = location.Bucket!;
        var trigger = new RegisteredTrigger(
            workflow.Name, yaml, source, baseDirectory, overrides, location.Uri, bucket, location.Prefix,
            spec.Include, workflow.Input.Exclude, spec.Settle, time.GetUtcNow())
        {
            Tenant = _tenant,
        };

        // The runs' view of the workflow must plan: checked now, not at the first upload.
        SubmitterRunStarter.ForTrigger(trigger);

        // The bucket must answer before anything is recorded: a registration over a missing bucket
        // or with wrong credentials is refused whole, not left behind with a job that fails.
        await foreach (var _ in location.Store.ListAsync(location.Prefix, cancellationToken).ConfigureAwait(false))
        {
            break;
        }

        var needsBaseline = await ledger.UpsertAsync(trigger, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        long existing = 0;
        if (needsBaseline)
        {
            // Until CompleteBaselineAsync, trigger processes leave this trigger alone; a register
            // that stops here is finished by registering again (recording is idempotent).
            var now = time.GetUtcNow();
            try
            {
                var (listed, _, last) = await TriggerCycle.ListIntoLedgerAsync(
                    stores, ledger, trigger, null, processExisting ? LedgerState.Pending : LedgerState.Baseline, "register", now, cancellationToken).ConfigureAwait(false);
                existing = listed;
                await ledger.CompleteBaselineAsync(trigger.Name, last, now, listed, cancellationToken).ConfigureAwait(false);
            }
            catch (PipelinesException e) when (!e.RetryHelps)
            {
                // The bucket went away or refused us midway: nothing half-registered stays.
                await ledger.RemoveAsync(trigger.Name, CancellationToken.None).ConfigureAwait(false);
                throw;
            }
        }

        AddRecurringJob(recurring, trigger.JobKey, options);
        return new Registration(trigger, needsBaseline, existing, processExisting);
    }

    public async Task<bool> UnregisterAsync(string name, CancellationToken cancellationToken)
    {
        // This tenant's job only: another tenant's workflow of the same name keeps its own.
        recurring.RemoveIfExists(RegisteredTrigger.RecurringJobIdOf(RegisteredTrigger.JobKeyOf(_tenant, name)));
        return await ledger.RemoveAsync(name, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The reconciliation job of a trigger (<paramref name="jobKey"/>: <see cref="RegisteredTrigger.JobKey"/>), on the
    /// dashboard's Recurring Jobs page as trigger:&lt;name&gt; (trigger:&lt;tenant&gt;/&lt;name&gt; for a tenant other than default).
    /// </summary>
    internal static void AddRecurringJob(IRecurringJobs recurring, string jobKey, TriggerOptions options) =>
        recurring.AddOrUpdate(RegisteredTrigger.RecurringJobIdOf(jobKey), TriggerJob.Queue, TriggerJob.JobKind, jobKey, options.ReconcileCron());
}
