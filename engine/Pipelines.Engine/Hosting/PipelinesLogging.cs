using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Pipelines.Telemetry;

namespace Pipelines.Hosting;

/// <summary>
/// The one logging set-up of every role (the CLI's hosts, `pipelines worker`, `pipelines
/// server`): the console in the format of Logging:Format, the same timestamps, the current
/// span's trace and span id on every line written inside one, and the same quiet filters.
/// </summary>
public static class PipelinesLogging
{
    /// <summary>The configuration key of the format; --log-format sets it.</summary>
    public const string FormatKey = "Logging:Format";

    /// <summary>Reads Logging:Format: text (the default) or json; a clear error for anything else.</summary>
    public static LogFormat FormatOf(IConfiguration config) => Parse(Settings.SettingsBinder.Bind<LoggingOptions>(config, "Logging").Format);

    public static LogFormat Parse(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" or "text" => LogFormat.Text,
        "json" => LogFormat.Json,
        _ => throw new PipelinesException($"{FormatKey} (or --log-format) '{text}': write text or json", retryHelps: false),
    };

    /// <summary>
    /// Sets up <paramref name="logging"/> at <paramref name="level"/>. Hangfire's own messages
    /// show from its warnings on when this role logs its information, and only its errors otherwise.
    /// </summary>
    public static ILoggingBuilder Configure(ILoggingBuilder logging, IConfiguration config, LogLevel level) =>
        Configure(logging, Settings.SettingsBinder.Bind<LoggingOptions>(config, "Logging"), level);

    /// <summary>Sets up <paramref name="logging"/> from settings already read.</summary>
    public static ILoggingBuilder Configure(ILoggingBuilder logging, LoggingOptions options, LogLevel level)
    {
        var format = Parse(options.Format);
        logging.ClearProviders();

        // Lines written inside a span carry its trace and span id as a scope (json: properties).
        logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
        if (format == LogFormat.Json)
        {
            logging.AddJsonConsole(o =>
            {
                o.IncludeScopes = true;
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                o.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false };
            });
        }
        else
        {
            // The messages name their run and task already; the scopes would make each line a paragraph.
            logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
                o.ColorBehavior = LoggerColorBehavior.Default;
            });
        }

        logging.SetMinimumLevel(level);
        logging.AddFilter("Hangfire", level <= LogLevel.Debug ? LogLevel.Information : level <= LogLevel.Information ? LogLevel.Warning : LogLevel.Error);
        return logging;
    }
}
