using Microsoft.Extensions.Configuration;
using Pipelines.Model;

namespace Pipelines.Triggers;

/// <summary>How the trigger role polls and cuts runs (configuration section Triggers).</summary>
public sealed record TriggerOptions
{
    /// <summary>How often the trigger loop lists each watched prefix and checks settle.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How often the recurring Hangfire job lists each prefix from the start (whole minutes, at least 1).</summary>
    public TimeSpan ReconcileInterval { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>A prefix whose last full listing held at most this many objects is listed in full at every poll.</summary>
    public int FullListingLimit { get; init; } = 10_000;

    /// <summary>The most objects one run takes; a flood of uploads becomes several runs.</summary>
    public int MaxObjectsPerRun { get; init; } = 1000;

    /// <summary>
    /// Reads the section; durations may be written 5s, 2m or 00:00:05. A value that cannot be
    /// read is refused with the key's name rather than silently replaced by the default.
    /// </summary>
    public static TriggerOptions From(IConfiguration config)
    {
        var s = config.GetSection("Triggers");
        var d = new TriggerOptions();
        return new TriggerOptions
        {
            PollInterval = Duration(s, "PollInterval", d.PollInterval),
            ReconcileInterval = Duration(s, "ReconcileInterval", d.ReconcileInterval),
            FullListingLimit = Int(s, "FullListingLimit", d.FullListingLimit),
            MaxObjectsPerRun = Int(s, "MaxObjectsPerRun", d.MaxObjectsPerRun),
        };
    }

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

    private static TimeSpan Duration(IConfigurationSection s, string key, TimeSpan fallback)
    {
        var text = s[key];
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }

        if ((Quantities.TryParseDuration(text, out var d) || TimeSpan.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out d)) && d > TimeSpan.Zero)
        {
            return d;
        }

        throw new PipelinesException($"Triggers:{key}: '{text}' is not a positive duration (e.g. 5s, 2m, 00:00:05)", retryHelps: false);
    }

    private static int Int(IConfigurationSection s, string key, int fallback)
    {
        var text = s[key];
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }

        return int.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new PipelinesException($"Triggers:{key}: '{text}' is not a positive whole number", retryHelps: false);
    }
}
