using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipelines.Gather;
using Pipelines.Hosting;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tenancy;
using Pipelines.Usage;

namespace Pipelines.Cli;

/// <summary>
/// The runs of a run store (PostgreSQL's; or, for the summary of `pipelines run`, the store of
/// the host that ran it), read and cancelled through Runs.RunCatalog, as the server does.
/// </summary>
internal sealed class StoreRunSource(IHost host, bool ownsHost = true, TenantId? tenant = null) : IRunSource
{
    // With --tenant, the operator reads and cancels as that tenant's keys would: the store's tenant view (another tenant's run is a missing one).
    private readonly IRunStore _store = host.Services.GetRequiredService<IRunStore>().For(tenant is { } t ? TenantScope.Of(t) : TenantScope.All);
    private readonly IUsageStore _usage = host.Services.GetRequiredService<IUsageStore>().For(tenant is { } t ? TenantScope.Of(t) : TenantScope.All);
    private readonly PriceSheets _prices = host.Services.GetRequiredService<PriceSheets>();
    private readonly ObjectStoreFactory _stores = host.Services.GetRequiredService<ObjectStoreFactory>();

    public string Name => "PostgreSQL";

    /// <summary>Starts the host first: its start makes the tables (Hosting/SchemaSetup), so a new database has no run rather than no table.</summary>
    public static async Task<IRunSource> StartAsync(IConfiguration config, TenantId? tenant, CancellationToken ct)
    {
        var host = EngineHost.Build(config, worker: false);
        try
        {
            await host.StartAsync(ct).ConfigureAwait(false);
            return new StoreRunSource(host, tenant: tenant);
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    public async Task<RunDocument> GetAsync(string runId, CancellationToken ct)
    {
        var run = await _store.GetRunAsync(runId, ct).ConfigureAwait(false) ?? throw new NotFoundException($"no run {runId} in PostgreSQL");
        return await DocumentAsync(run, await _store.CountTasksAsync(runId, ct).ConfigureAwait(false), ct).ConfigureAwait(false);
    }

    public async Task<Page<RunDocument>> ListAsync(RunQuery query, CancellationToken ct)
    {
        var page = await RunCatalog.ListAsync(_store, query, ct).ConfigureAwait(false);
        return new Page<RunDocument>(page.Items.Select(r => RunDocument.From(r.Run, r.Counts, null)).ToList(), page.Total);
    }

    public async Task<RunDocument> CancelAsync(string runId, string who, CancellationToken ct)
    {
        var cancelled = await RunCatalog.CancelAsync(_store, runId, who, ct).ConfigureAwait(false);
        return cancelled.Outcome switch
        {
            RunCatalog.CancelOutcome.NotFound => throw new NotFoundException(RunCatalog.Refusal(cancelled, runId)),
            RunCatalog.CancelOutcome.Ended => throw new PipelinesException(RunCatalog.Refusal(cancelled, runId), retryHelps: false),
            _ => RunDocument.From(cancelled.Run!, cancelled.Counts!, null),
        };
    }

    public async Task<(bool Ended, IReadOnlyList<RunLog> Logs)> LogsAsync(string runId, string? task, CancellationToken ct)
    {
        var run = await _store.GetRunAsync(runId, ct).ConfigureAwait(false) ?? throw new NotFoundException($"no run {runId} in PostgreSQL");
        var tasks = await RunLogs.TasksAsync(_store, runId, ct).ConfigureAwait(false);
        var taskId = task is null ? null : (RunLogs.Find(tasks, task) ?? throw new NotFoundException($"run {runId} has no task '{task}' (give its index or its task id)")).TaskId;
        var steps = RunDefinition.FromJson(run.DefinitionJson).Workflow.Steps.Select(s => s.Name).ToList();
        return (run.State.IsTerminal(), await RunLogs.ListAsync(_stores.Open(run.OutputUri), tasks, steps, taskId, ct).ConfigureAwait(false));
    }

    public async Task<byte[]?> ReadAsync(string runId, string key, CancellationToken ct)
    {
        var run = await _store.GetRunAsync(runId, ct).ConfigureAwait(false) ?? throw new NotFoundException($"no run {runId} in PostgreSQL");
        var folder = _stores.Open(run.OutputUri);
        try
        {
            return await folder.Store.ReadAllAsync(folder.Key(key), ct).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (ownsHost)
        {
            await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
            host.Dispose();
        }
    }

    /// <summary>A run with its first failed and held tasks and, once it has ended, its run.json.</summary>
    private async Task<RunDocument> DocumentAsync(RunRecord run, TaskCounts counts, CancellationToken ct)
    {
        RunSummary? summary = null;
        if (run.State.IsTerminal())
        {
            try
            {
                summary = await RunSummary.ReadAsync(_stores.Open(run.OutputUri), ct).ConfigureAwait(false);
            }
            catch (ObjectNotFoundException)
            {
                // A run that ended without run.json (a failed gather): the document says it has no results.
            }
        }

        var failed = counts.Failed == 0 ? [] : (await _store.QueryTasksAsync(run.RunId, new TaskQuery(TaskState.Failed, 0, 5), ct).ConfigureAwait(false)).Items;
        var held = counts.Held == 0 ? [] : (await _store.QueryTasksAsync(run.RunId, new TaskQuery(TaskState.Queued, 0, 200), ct).ConfigureAwait(false)).Items;
        // The usage so far from the ledger, as the server's GET /api/runs/{id} (an ended run's run.json has it, WithSummary).
        var usage = summary?.Usage ?? RunUsage.Of(await _usage.AggregateAsync(new UsageQuery(RunId: run.RunId), ct).ConfigureAwait(false), _prices.For(run.Tenant));
        return RunDocument.From(run, counts, summary) with { FailedTasks = RunDocument.Failed(failed), HeldTasks = RunDocument.Held(held), Usage = usage };
    }
}
