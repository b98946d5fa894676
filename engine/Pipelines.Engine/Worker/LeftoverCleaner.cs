using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Storage;

namespace Pipelines.Worker;

/// <summary>
/// Removes what dead workers on this host left: their containers (a worker killed mid-step
/// leaves its container running) and their tasks' scratch folders. It runs when the worker
/// starts and every <see cref="Interval"/> after. Only things whose owner is known to be dead
/// are touched (<see cref="ProcessOwner.IsGone"/>), never a live worker's.
/// </summary>
internal sealed partial class LeftoverCleaner(IContainerSweep sweep, WorkerOptions options, ILogger<LeftoverCleaner> log) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            await CleanAsync(stoppingToken).ConfigureAwait(false);
            try
            {
                await Task.Delay(Interval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One pass; returns the containers and scratch folders it removed.</summary>
    public async Task<(int Containers, int Folders)> CleanAsync(CancellationToken cancellationToken)
    {
        var containers = 0;
        try
        {
            containers = await sweep.RemoveLeftoversAsync(ProcessOwner.IsGone, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The engine is out of reach for now, or did not answer in time (Docker.DotNet's
            // timeout is a TaskCanceledException, not the host stopping): the next pass tries again.
            LogFailed(log, "containers", e.Message);
        }

        var folders = 0;
        foreach (var folder in Directory.Exists(options.Scratch) ? Directory.EnumerateDirectories(options.Scratch) : [])
        {
            try
            {
                if (ProcessOwner.IsGone(ProcessOwner.OwnerOf(folder)))
                {
                    NoFollow.DeleteTree(folder);
                    folders++;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or PipelinesException)
            {
                // Removed meanwhile by another worker's cleanup, or not ours to remove: the others go on.
                LogFailed(log, "scratch folder " + folder, e.Message);
            }
        }

        if (containers + folders > 0)
        {
            LogRemoved(log, containers, folders);
        }

        return (containers, folders);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "removed what dead workers left: {Containers} containers, {Folders} scratch folders")]
    private static partial void LogRemoved(ILogger logger, int containers, int folders);

    [LoggerMessage(Level = LogLevel.Warning, Message = "could not clean dead workers' {What}: {Error}")]
    private static partial void LogFailed(ILogger logger, string what, string error);
}
