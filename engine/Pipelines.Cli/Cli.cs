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

    public static async Task<int> Guard(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (WorkflowInvalidException e)
        {
            Console.Error.WriteLine(e.Message);
            return Invalid;
        }
        catch (PipelinesException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return Failed;
        }
        catch (CommandAppException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return Invalid;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("stopped");
            return 130;
        }
        catch (Npgsql.NpgsqlException e)
        {
            // Npgsql says where ("Failed to connect to 127.0.0.1:5432") and the socket says why.
            var why = e.GetBaseException().Message;
            var where = e.Message == why ? "" : char.ToLowerInvariant(e.Message[0]) + e.Message[1..].TrimEnd('.') + ": ";
            Console.Error.WriteLine($"error: PostgreSQL: {where}{why} (is it running? the connection string is the Postgres setting, PIPELINES_POSTGRES)");
            return Failed;
        }
    }

    public static bool Interactive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
}
