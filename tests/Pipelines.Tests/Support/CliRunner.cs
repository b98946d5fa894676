using System.Diagnostics;
using System.Text;

namespace Pipelines.Tests.Support;

/// <summary>Runs the real `pipelines` CLI as a separate process, the way a user does.</summary>
public static class CliRunner
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "pipelines.dll");

    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
    }

    public static Process Start(IEnumerable<string> args, IDictionary<string, string?>? env = null, string? workingDirectory = null)
    {
        TestLane.Refuse("the pipelines CLI as a child process");
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? TestEnvironment.RepoRoot,
        };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        // The suite's own connection settings must not leak into runs that test the embedded mode.
        psi.Environment.Remove("PIPELINES_POSTGRES");

        // Workers of tests run whatever the machine does (a test of harvesting says otherwise):
        // on a machine that others keep busy, when-idle, a worker's default, would admit nothing.
        psi.Environment["PIPELINES_Harvest__Policy"] = "always";

        // Several workers run on this machine at once: each takes a free port for its health
        // and metrics listener (said on its start line) rather than the default one.
        psi.Environment["PIPELINES_Worker__HealthPort"] = "0";
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

        return Process.Start(psi)!;
    }

    /// <summary>
    /// Stops a process as an operator would (SIGTERM: a worker removes its warm containers and
    /// hands back its tasks), and kills it with its children if it does not end within <paramref name="grace"/>.
    /// </summary>
    public static async Task StopAsync(Process process, TimeSpan grace)
    {
        if (process.HasExited)
        {
            return;
        }

        using (var term = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await term.WaitForExitAsync();
        }

        using var cts = new CancellationTokenSource(grace);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    public static async Task<Result> RunAsync(IEnumerable<string> args, IDictionary<string, string?>? env = null, TimeSpan? timeout = null) =>
        (await RunMeasuredAsync(args, env, timeout)).Result;

    /// <summary>Runs the CLI and samples its peak resident memory (VmHWM) while it runs.</summary>
    public static async Task<(Result Result, long PeakRssBytes)> RunMeasuredAsync(IEnumerable<string> args, IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        using var p = Start(args, env);
        long peak = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                try
                {
                    var line = File.ReadLines($"/proc/{p.Id}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
                    if (line is not null)
                    {
                        peak = Math.Max(peak, long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024);
                    }
                }
                catch (IOException)
                {
                    // The process has just ended.
                }

                await Task.Delay(50, CancellationToken.None);
            }
        });
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(5));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"pipelines {string.Join(' ', args)} did not end in time\n{stdout}\n{stderr}");
        }

        p.WaitForExit();
        await sampling.CancelAsync();
        await sampler;
        return (new Result(p.ExitCode, stdout.ToString(), stderr.ToString()), peak);
    }
}
