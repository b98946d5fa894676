using Pipelines.Cli.Commands;
using Pipelines.Hosting;
using Spectre.Console.Cli;

namespace Pipelines.Cli;

/// <summary>
/// --log-format, an option of every command, is the setting Logging:Format: it is set for this
/// process as PIPELINES_Logging__Format before the command reads its configuration, so the one
/// logging set-up (Hosting/PipelinesLogging) sees it whichever host the command builds.
/// </summary>
internal sealed class LogFormatOption : ICommandInterceptor
{
    public void Intercept(CommandContext context, CommandSettings settings)
    {
        if (settings is CommonSettings { LogFormat: { } format })
        {
            Environment.SetEnvironmentVariable("PIPELINES_" + PipelinesLogging.FormatKey.Replace(":", "__", StringComparison.Ordinal), PipelinesLogging.Parse(format).ToString().ToLowerInvariant());
        }
    }
}
