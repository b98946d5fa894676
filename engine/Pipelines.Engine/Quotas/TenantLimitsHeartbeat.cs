using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Pipelines.Quotas;

/// <summary>
/// Says every <see cref="PostgresTenantLimits.BeatInterval"/> that this process is alive, so that
/// the quota slots it holds (running invocations, warm containers) stay held; a process that stops
/// beating (killed, frozen, cut off) has them given back after <see cref="PostgresTenantLimits.DeadAfter"/>.
/// Every process with the cluster's store beats, api-only servers too, which are no Hangfire servers.
/// </summary>
internal sealed partial class TenantLimitsHeartbeat(PostgresTenantLimits limits, TimeProvider time, ILogger<TenantLimitsHeartbeat> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(PostgresTenantLimits.BeatInterval, time);
        try
        {
            do
            {
                try
                {
                    await limits.BeatAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    // Missed beats are harmless until six in a row: the next one may reach PostgreSQL again.
                    LogBeatFailed(log, limits.Process, PipelinesException.Describe(e));
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host stops (or is disposed without a stop): the beats end with it, quietly.
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "process {Process} could not say it is alive to the tenant counters: {Reason}")]
    private static partial void LogBeatFailed(ILogger logger, string process, string reason);
}
