using Microsoft.Extensions.Configuration;
using Pipelines.Settings;

namespace Pipelines.Triggers;

/// <summary>How the trigger role polls and cuts runs (configuration section Triggers).</summary>
public sealed record TriggerOptions
{
    /// <summary>How often the trigger loop lists each watched prefix and checks settle.</summary>
    [Positive]
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How often the recurring Hangfire job lists each prefix from the start (whole minutes, at least 1).</summary>
    [Positive]
    public TimeSpan ReconcileInterval { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>A prefix whose last full listing held at most this many objects is listed in full at every poll.</summary>
    [Positive]
    public int FullListingLimit { get; init; } = 10_000;

    /// <summary>The most objects one run takes; a flood of uploads becomes several runs.</summary>
    [Positive]
    public int MaxObjectsPerRun { get; init; } = 1000;

    /// <summary>Reads the section (<see cref="SettingsBinder"/>); a value that cannot be read is refused with the key's name.</summary>
    public static TriggerOptions From(IConfiguration config) => SettingsBinder.Bind<TriggerOptions>(config, "Triggers");

    /// <summary>The recurring job's cron: every N minutes (Hangfire's floor is one minute).</summary>
    public string ReconcileCron()
    {
        var minutes = Math.Max(1, (int)Math.Round(ReconcileInterval.TotalMinutes));
        return minutes switch
        {
            1 => "* * * * *",
            < 60 => $"*/{minutes} * * * *",
            _ => $"0 */{Math.Min(23, minutes / 60)} * * *",
        };
    }
}
