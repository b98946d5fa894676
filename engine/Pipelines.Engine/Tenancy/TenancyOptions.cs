using Pipelines.Settings;

namespace Pipelines.Tenancy;

/// <summary>
/// How a server shares its workers among tenants (section <c>Tenancy</c>, docs/tenants.md): the
/// dispatcher's fair share and the quotas every tenant has unless its own section says otherwise
/// (<c>Tenancy:Defaults:Quotas</c>). A server without tenants has the default tenant alone, which
/// these quotas bind as well.
/// </summary>
public sealed record TenancyOptions
{
    /// <summary>False releases queued work first come, first served (the order before tenants) instead of by fair share.</summary>
    public bool FairShare { get; init; } = true;

    /// <summary>How fast a tenant's past use is forgotten: its decayed use halves in this time (HTCondor's default is a day).</summary>
    [Positive]
    public TimeSpan HalfLife { get; init; } = TimeSpan.FromDays(1);

    /// <summary>How often the dispatcher looks for free slots when nothing has told it (a submission, a task's end) sooner.</summary>
    [Positive]
    public TimeSpan DispatchInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The most tasks of one run a Hangfire job carries (docs/decisions.md, "Several tasks per
    /// Hangfire job"): fewer when few tasks wait (never fewer jobs than the live slots x 2), 1
    /// while async invocations wait or run; 1 is one job per task.
    /// </summary>
    [Positive]
    public int TasksPerJob { get; init; } = 8;

    /// <summary>The quotas of a tenant whose section does not set them.</summary>
    public TenancyDefaults Defaults { get; init; } = new();
}

/// <summary>What every tenant gets unless its own section says otherwise (<c>Tenancy:Defaults</c>).</summary>
[SettingsSection]
public sealed record TenancyDefaults
{
    /// <summary>A tenant's part of the workers when several have work waiting, against the other tenants' shares.</summary>
    [Positive]
    public double Share { get; init; } = 1;

    /// <summary>The quotas (unset: no limit).</summary>
    public QuotaSettings Quotas { get; init; } = new();

    /// <summary>The budget (unset: none).</summary>
    public BudgetSettings Budget { get; init; } = new();
}

/// <summary>
/// A tenant's budget (<c>Tenancy:Defaults:Budget</c>, <c>Tenants:ID:Budget</c>; docs/tenants.md,
/// Budgets), in its price sheet's currency: at zero or below new work waits (batch tasks held with
/// the reason "budget", a synchronous invoke answered 429, async invocations queued) and running
/// work finishes. Nothing is failed or dropped by a budget.
/// </summary>
[SettingsSection]
public sealed record BudgetSettings
{
    /// <summary>What the tenant may spend in a period, priced by its sheet (Prices); unset: no budget.</summary>
    [AtLeastZero]
    public double? Amount { get; init; }

    /// <summary><c>month</c> (the calendar month, UTC: the budget is whole again on the 1st) or <c>total</c> (all the tenant's usage ever).</summary>
    [OneOf(Month, Total)]
    public string Period { get; init; } = Month;

    public const string Month = "month";
    public const string Total = "total";
}

/// <summary>
/// One tenant's quotas (<c>Tenancy:Defaults:Quotas</c>, <c>Tenants:ID:Quotas</c>); unset is no
/// limit. Past a running-work quota work waits (batch tasks held with the reason "quota", async
/// invocations queued, a synchronous invoke answered 429 with <c>Retry-After</c>); a step or
/// function asking for more than <see cref="MaxCpus"/>, <see cref="MaxMemory"/>,
/// <see cref="MaxTimeout"/> or <see cref="MaxDisk"/> is refused at submit or deploy, naming the
/// field; a push past <see cref="StoredBytes"/> is refused. Nothing is failed or dropped by a quota.
/// </summary>
[SettingsSection]
public sealed record QuotaSettings
{
    /// <summary>Batch tasks of the tenant running at once, on all workers.</summary>
    [Positive]
    public int? RunningTasks { get; init; }

    /// <summary>Warm containers of the tenant's functions kept at once, on all workers.</summary>
    [Positive]
    public int? WarmContainers { get; init; }

    /// <summary>Invocations of the tenant's functions running at once (synchronous and asynchronous).</summary>
    [Positive]
    public int? ConcurrentInvocations { get; init; }

    /// <summary>Invocations of the tenant's functions accepted per minute (a token bucket of this size, refilled evenly).</summary>
    [Positive]
    public int? InvocationsPerMinute { get; init; }

    /// <summary>The most CPUs one step or function may ask for.</summary>
    [Positive]
    public double? MaxCpus { get; init; }

    /// <summary>The most memory one step or function may ask for.</summary>
    [Positive]
    [Bytes]
    public long? MaxMemory { get; init; }

    /// <summary>The longest timeout one step or function may ask for.</summary>
    [Positive]
    public TimeSpan? MaxTimeout { get; init; }

    /// <summary>The most scratch disk one step or function may ask for.</summary>
    [Positive]
    [Bytes]
    public long? MaxDisk { get; init; }

    /// <summary>The bytes of the tenant's images in the algorithm store (an image shared with another tenant counts for each).</summary>
    [Positive]
    [Bytes]
    public long? StoredBytes { get; init; }

    /// <summary>These quotas where set, else <paramref name="defaults"/>' (a tenant's own section over the defaults, key by key).</summary>
    public QuotaSettings Over(QuotaSettings defaults) => new()
    {
        RunningTasks = RunningTasks ?? defaults.RunningTasks,
        WarmContainers = WarmContainers ?? defaults.WarmContainers,
        ConcurrentInvocations = ConcurrentInvocations ?? defaults.ConcurrentInvocations,
        InvocationsPerMinute = InvocationsPerMinute ?? defaults.InvocationsPerMinute,
        MaxCpus = MaxCpus ?? defaults.MaxCpus,
        MaxMemory = MaxMemory ?? defaults.MaxMemory,
        MaxTimeout = MaxTimeout ?? defaults.MaxTimeout,
        MaxDisk = MaxDisk ?? defaults.MaxDisk,
        StoredBytes = StoredBytes ?? defaults.StoredBytes,
    };
}
