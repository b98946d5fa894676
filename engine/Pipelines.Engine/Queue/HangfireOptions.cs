using Hangfire;
using Microsoft.Extensions.Configuration;
using Pipelines.Settings;

namespace Pipelines.Queue;

/// <summary>The queue's settings (configuration section Hangfire), read once at start by <see cref="SettingsBinder"/>.</summary>
public sealed record HangfireOptions
{
    /// <summary>Hangfire's schema, beside the stores' (Schema).</summary>
    [Matches("^[a-z_][a-z0-9_]{0,62}$", "a PostgreSQL schema name (lower-case letters, digits and _)")]
    public string Schema { get; init; } = "hangfire";

    /// <summary>
    /// The last resort for the job of a worker that died (a live worker's job slides, so it is
    /// never delivered twice); the queue watchdog hands such jobs back sooner.
    /// </summary>
    [Positive]
    public TimeSpan InvisibilityTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How often a process's Hangfire servers say they are alive.</summary>
    [Positive]
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A server silent for this long is dead: the queue watchdog hands its jobs back.</summary>
    [Positive]
    public TimeSpan ServerTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often Hangfire removes dead servers' entries.</summary>
    [Positive]
    public TimeSpan ServerCheckInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the queue watchdog looks for fetched jobs that no live worker runs.</summary>
    [Positive]
    public TimeSpan WatchdogInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How many times a job that hit an outage is delivered again before its work ends failed.</summary>
    [Between(0, int.MaxValue)]
    public int Retries { get; init; } = 10;

    /// <summary>Seconds before each of those deliveries, the last repeating (Hangfire:RetryDelays:0, :1, ...): about 48 minutes in all.</summary>
    [DefaultText("5, 15, 30, 60, 120, 300, 300, 600, 600, 900")]
    public IReadOnlyList<int> RetryDelays { get; init; } = [5, 15, 30, 60, 120, 300, 300, 600, 600, 900];

    /// <summary>Reads the section; the delays are a list, read here, each a positive whole number of seconds.</summary>
    public static HangfireOptions From(IConfiguration config)
    {
        var options = SettingsBinder.Bind<HangfireOptions>(config, "Hangfire");
        var delays = SettingsBinder.BindList<int>(config, "Hangfire:RetryDelays", "a whole number of seconds above zero", text => int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n > 0 ? n : (int?)null);
        return delays.Count > 0 ? options with { RetryDelays = delays } : options;
    }

    /// <summary>
    /// A dead worker is noticed in seconds, not minutes: its server entry goes stale after
    /// ServerTimeout, and the QueueWatchdog then hands its jobs back to the queue. Every Hangfire
    /// server of a process (the trigger role's too) must use these: a server that beats less
    /// often than another's ServerTimeout is removed as dead while it lives.
    /// </summary>
    internal void SetServerTimings(BackgroundJobServerOptions o)
    {
        o.HeartbeatInterval = HeartbeatInterval;
        o.ServerTimeout = ServerTimeout;
        o.ServerCheckInterval = ServerCheckInterval;
    }
}
