using System.Diagnostics;
using System.Text;

namespace Pipelines.Tests.Support;

/// <summary>Runs a program of the machine (docker-compose, docker, a script) and keeps what it printed.</summary>
public static class HostCommand
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
    }

    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        TestLane.Refuse("a program of the machine (" + file + ")");
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = TestEnvironment.RepoRoot,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env ?? new Dictionary<string, string?>())
        {
            if (v is null)
            {
                psi.Environment.Remove(k);
            }
            else
            {
                psi.Environment[k] = v;
            }
        }

        using var p = Process.Start(psi)!;
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var reading = Task.WhenAll(CopyAsync(p.StandardOutput, stdout), CopyAsync(p.StandardError, stderr));
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(5));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            await reading;
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not end in time\n{stdout}\n{stderr}");
        }

        await reading;
        return new Result(p.ExitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs it and fails the test, with everything it printed, unless it exits 0.</summary>
    public static async Task<string> CheckAsync(string file, IEnumerable<string> args, IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        var argList = args.ToList();
        var result = await RunAsync(file, argList, env, timeout);
        Assert.True(result.ExitCode == 0, $"{file} {string.Join(' ', argList)}: {result}");
        return result.Stdout;
    }

    private static async Task CopyAsync(StreamReader reader, StringBuilder into)
    {
        var buffer = new char[4096];
        int n;
        while ((n = await reader.ReadAsync(buffer)) > 0)
        {
            into.Append(buffer, 0, n);
        }
    }
}
