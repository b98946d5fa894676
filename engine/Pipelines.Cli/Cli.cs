using Pipelines.Model;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Pipelines.Cli;

/// <summary>
/// The exit codes of every command, here and nowhere else (docs/cli.md lists them), and the
/// one place where failures become messages.
/// </summary>
internal static class Cli
{
    /// <summary>It worked: the run succeeded (or, for status, has not ended), the canary found both sides equal.</summary>
    public const int Ok = 0;

    /// <summary>A task or the run failed, a canary's candidate failed so that nothing could be compared, or the engine refused what was asked.</summary>
    public const int Failed = 1;

    /// <summary>The workflow or function file, or a command-line option, is invalid: nothing ran.</summary>
    public const int Invalid = 2;

    /// <summary>A batch canary found a difference between the candidate and the run (which itself succeeded): a finding, not a failure.</summary>
    public const int Differs = 3;

    /// <summary>No such run, task, function, algorithm or trigger.</summary>
    public const int NotFound = 4;

    /// <summary>PostgreSQL, the server, the object store or the Docker engine could not be reached, or the server failed (5xx): trying again may work.</summary>
    public const int Unavailable = 5;

    /// <summary>The run ended cancelled (a user's cancel, or a stop of the canary's current run).</summary>
    public const int Cancelled = 6;

    /// <summary>Stopped by Ctrl+C or SIGTERM (the shell's 128 + SIGINT).</summary>
    public const int Interrupted = 130;

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
        catch (NotFoundException e)
        {
            error.WriteLine("error: " + OneLine(e.Message));
            return NotFound;
        }
        catch (FunctionCallException e)
        {
            // The line, then the algorithm's own last lines as it wrote them.
            error.WriteLine("error: " + OneLine(e.Message) + e.Details);
            return e.RetryHelps ? Unavailable : Failed;
        }
        catch (Exception e) when (e is Pipelines.Canary.CanaryRequestException or Pipelines.Runs.RunCatalog.FilterException)
        {
            // A flag that cannot be carried out: a usage error, like a malformed option.
            error.WriteLine("error: " + e.Message);
            return Invalid;
        }
        catch (PipelinesException e)
        {
            error.WriteLine("error: " + OneLine(e.Message));
            return e.RetryHelps ? Unavailable : Failed;
        }
        catch (CommandAppException e)
        {
            error.WriteLine("error: " + e.Message);
            return Invalid;
        }
        catch (OperationCanceledException)
        {
            error.WriteLine("stopped");
            return Interrupted;
        }
        catch (Npgsql.NpgsqlException e)
        {
            // Npgsql says where ("Failed to connect to 127.0.0.1:5432") and the socket says why.
            var why = e.GetBaseException().Message;
            var where = e.Message == why ? "" : char.ToLowerInvariant(e.Message[0]) + e.Message[1..].TrimEnd('.') + ": ";
            error.WriteLine($"error: PostgreSQL: {where}{why} (is it running? the connection string is the Postgres setting, PIPELINES_POSTGRES)");
            return Unavailable;
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

    /// <summary>The exit code of a run that has ended in <paramref name="state"/> (and of `status` for it): 0 while it goes on.</summary>
    public static int Of(Pipelines.RunStore.RunState state) => state switch
    {
        Pipelines.RunStore.RunState.Failed => Failed,
        Pipelines.RunStore.RunState.Cancelled => Cancelled,
        _ => Ok,
    };

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();

    public static bool Interactive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
}
