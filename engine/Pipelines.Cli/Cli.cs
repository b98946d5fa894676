using Pipelines.Model;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Pipelines.Cli;

/// <summary>Exit codes and the one place where failures become messages.</summary>
internal static class Cli
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Invalid = 2;

    /// <summary>
    /// Runs a command and turns every failure into one line on stderr and an exit code: the
    /// engine's own failures by their kind, anything else as an unexpected error, with its stack
    /// trace only when <paramref name="verbose"/> (-v) asks for it. Lines go to <paramref name="error"/> (stderr).
    /// </summary>
    public static async Task<int> Guard(Func<Task<int>> body, bool verbose, TextWriter error)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (FileInvalidException e)
        {
            // A workflow or function file with every problem in it.
            error.WriteLine(e.Message);
            return Invalid;
        }
        catch (FunctionCallException e)
        {
            // The line, then the algorithm's own last lines as it wrote them.
            error.WriteLine("error: " + OneLine(e.Message) + e.Details);
            return Failed;
        }
        catch (Pipelines.Canary.CanaryRequestException e)
        {
            // A flag of the canary that cannot be carried out: a usage error, like a malformed option.
            error.WriteLine("error: " + e.Message);
            return Invalid;
        }
        catch (PipelinesException e)
        {
            error.WriteLine("error: " + OneLine(e.Message));
            return Failed;
        }
        catch (CommandAppException e)
        {
            error.WriteLine("error: " + e.Message);
            return Invalid;
        }
        catch (OperationCanceledException)
        {
            error.WriteLine("stopped");
            return 130;
        }
        catch (Npgsql.NpgsqlException e)
        {
            // Npgsql says where ("Failed to connect to 127.0.0.1:5432") and the socket says why.
            var why = e.GetBaseException().Message;
            var where = e.Message == why ? "" : char.ToLowerInvariant(e.Message[0]) + e.Message[1..].TrimEnd('.') + ": ";
            error.WriteLine($"error: PostgreSQL: {where}{why} (is it running? the connection string is the Postgres setting, PIPELINES_POSTGRES)");
            return Failed;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The file system said no (a path that cannot be read or written): the environment, not a bug.
            error.WriteLine("error: " + OneLine(e.Message));
            return Failed;
        }
        catch (Exception e)
        {
            // A failure no one planned for is still one line, never a crash with a trace; -v shows where it came from.
            error.WriteLine($"error: unexpected {e.GetType().Name}: {OneLine(e.Message)}" + (verbose ? "" : " (run again with --verbose to see where it came from)"));
            if (verbose)
            {
                error.WriteLine(e.ToString());
            }

            return Failed;
        }
    }

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();

    public static bool Interactive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
}
