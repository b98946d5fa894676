using Pipelines.Cli.Commands;
using Pipelines.Hosting;
using Pipelines.Runs;
using Pipelines.RunStore;

namespace Pipelines.Cli;

/// <summary>
/// Where the run verbs (status, runs, cancel, logs) find runs: a `pipelines server` (--server,
/// through the REST API), the run store in PostgreSQL, or this machine's embedded runs (their
/// index and folders). Each verb is written once, against this; each source goes through the
/// one home of each rule (Runs.RunCatalog, Runs.RunLogs), on its side of the API or here.
/// </summary>
internal interface IRunSource : IAsyncDisposable
{
    /// <summary>How the source is named in messages: the server's URL, PostgreSQL, or this machine's embedded runs.</summary>
    string Name { get; }

    /// <summary>A run with its counts, held tasks, first failed tasks and (once it has ended) its run.json; <see cref="NotFoundException"/> when there is none.</summary>
    Task<RunDocument> GetAsync(string runId, CancellationToken ct);

    /// <summary>Runs matching the query, newest first, one page.</summary>
    Task<Page<RunDocument>> ListAsync(RunQuery query, CancellationToken ct);

    /// <summary>Cancels a run for <paramref name="who"/>: the run as it is after the request; <see cref="NotFoundException"/> or a refusal when it cannot be.</summary>
    Task<RunDocument> CancelAsync(string runId, string who, CancellationToken ct);

    /// <summary>The step logs the run has written so far (of one task, or all), and whether the run has ended.</summary>
    Task<(bool Ended, IReadOnlyList<RunLog> Logs)> LogsAsync(string runId, string? task, CancellationToken ct);

    /// <summary>A file of the run's folder (a log), or null when it is not there.</summary>
    Task<byte[]?> ReadAsync(string runId, string key, CancellationToken ct);

    /// <summary>The source the settings name: --server (or PIPELINES_SERVER), else PostgreSQL when configured, else the embedded runs.</summary>
    static async Task<IRunSource> OpenAsync(RunSourceSettings settings, CancellationToken ct)
    {
        if (Remote.ServerOf(settings) is not null)
        {
            return new ServerRunSource(Remote.Client(settings));
        }

        var config = EngineHost.Configuration(settings.Config);
        var tenant = Remote.TenantOf(settings);
        if (EngineHost.UsesPostgres(config))
        {
            return await StoreRunSource.StartAsync(config, tenant, ct).ConfigureAwait(false);
        }

        // This machine's embedded runs have no tenants but the default one.
        return tenant is { IsDefault: false }
            ? throw new PipelinesException($"--tenant {tenant}: this machine's embedded runs belong to the default tenant only; name a server (--server) or PostgreSQL (Postgres) that has tenant {tenant}", retryHelps: false)
            : new EmbeddedRunSource(EngineHost.Build(config, worker: false));
    }
}
