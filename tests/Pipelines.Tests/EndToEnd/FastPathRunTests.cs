using System.Diagnostics;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// The batch fast path as a user runs it (the CLI, embedded mode, the real Docker engine and
/// the sample image): a step with reuse: true runs its tasks as requests to warm containers and
/// leaves the same rows and provenance as one container per task; input.batch: auto sizes the
/// tasks from the worker slots.
/// </summary>
[Integration]
public sealed class FastPathRunTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly Dictionary<string, string?> _env;

    public FastPathRunTests()
    {
        _env = new() { ["PIPELINES_HOME"] = _temp.Combine("home") };
    }

    [Fact]
    public async Task A_run_with_reuse_gives_the_same_rows_and_provenance_as_one_container_per_task()
    {
        var oneShot = await RunAsync("one-shot", "input.batch=10");
        var warm = await RunAsync("warm", "input.batch=10", "steps[0].reuse=true");

        Assert.Equal(0, oneShot.ExitCode);
        Assert.Equal(0, warm.ExitCode);
        Assert.Contains("(20 succeeded, 0 cached, 0 failed, 0 cancelled)", warm.Stdout, StringComparison.Ordinal);
        var a = Folder(oneShot, "one-shot");
        var b = Folder(warm, "warm");
        Assert.Equal(
            (await a.ResultAsync("stats")).Select(r => string.Join(",", r.Values)),
            (await b.ResultAsync("stats")).Select(r => string.Join(",", r.Values)));

        var pa = (await a.ProvenanceAsync()).OrderBy(p => p.TaskId, StringComparer.Ordinal).ToList();
        var pb = (await b.ProvenanceAsync()).OrderBy(p => p.TaskId, StringComparer.Ordinal).ToList();
        Assert.Equal(20, pb.Count);
        Assert.Equal(
            pa.Select(p => (p.TaskId, p.Status, p.ExitCode, p.ImageDigest, string.Join(' ', p.Command), string.Join(',', p.Inputs.Select(i => i.Sha256)), string.Join(',', p.Outputs.Select(o => o.Key + "=" + o.Sha256)))),
            pb.Select(p => (p.TaskId, p.Status, p.ExitCode, p.ImageDigest, string.Join(' ', p.Command), string.Join(',', p.Inputs.Select(i => i.Sha256)), string.Join(',', p.Outputs.Select(o => o.Key + "=" + o.Sha256)))));
        await b.AssertOutputHashesAsync(pb);

        // Every task kept its own log, and no warm container of the run outlived the process.
        Assert.All(pb, p => Assert.NotNull(p.Log));
        Assert.Equal("", await DockerAsync("ps", "-aq", "--filter", "label=org.pipelines.run=" + RunFolder.RunIdFrom(warm)));
    }

    [Fact]
    public async Task Batch_auto_cuts_four_tasks_per_worker_slot()
    {
        var result = await RunAsync("auto", "input.batch=auto", "steps[0].reuse=true", "-v");

        Assert.Equal(0, result.ExitCode);

        // The four warm containers (one per worker slot) were started while the input was
        // planned, ahead of the first task; no other was started. They were stopped when the
        // run's last task ended, not left for the pool's shutdown.
        var runId = RunFolder.RunIdFrom(result);
        Assert.Equal(4, Count(result.Stdout, $"of run:{runId}/step:stats started (Fork mode, ahead of its requests)"));
        Assert.Equal(4, Count(result.Stdout, $"of run:{runId}/step:stats started ("));
        Assert.Contains($"stopped: run {runId} has no task left", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("stopped: the warm pool was shut down", result.Stdout, StringComparison.Ordinal);

        // 200 files over 4 local workers, 4 tasks each: batches of 13, so 16 tasks.
        Assert.Contains("16 task(s) over 200 input file(s)", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("stats: 200 rows gathered", result.Stdout, StringComparison.Ordinal);
        var provenance = await Folder(result, "auto").ProvenanceAsync();
        Assert.Equal(16, provenance.Count);
        Assert.Equal(13, provenance.Max(p => p.Inputs.Count));
    }

    private static int Count(string text, string what)
    {
        var n = 0;
        for (var i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + what.Length, StringComparison.Ordinal))
        {
            n++;
        }

        return n;
    }

    private Task<CliRunner.Result> RunAsync(string output, params string[] sets)
    {
        var args = new List<string> { "run", "workflows/fastq-stats.yaml", "--local-workers", "4", "--set", "output.uri=" + _temp.Combine(output) };
        foreach (var s in sets)
        {
            args.AddRange(s.StartsWith('-') ? [s] : ["--set", s]);
        }

        return CliRunner.RunAsync(args, _env);
    }

    private RunFolder Folder(CliRunner.Result result, string output)
    {
        Assert.True(result.Stdout.Contains("output: ", StringComparison.Ordinal), result.ToString());
        var factory = new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1"));
        return new RunFolder(factory.Open(_temp.Combine(output)).Child(RunFolder.RunIdFrom(result)));
    }

    private static async Task<string> DockerAsync(params string[] args)
    {
        var start = new ProcessStartInfo("docker") { RedirectStandardOutput = true, RedirectStandardError = true };
        if (TestEnvironment.DockerEndpoint.StartsWith("unix://", StringComparison.Ordinal))
        {
            start.ArgumentList.Add("-H");
            start.ArgumentList.Add(TestEnvironment.DockerEndpoint);
        }

        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, await stderr);
        return (await stdout).Trim();
    }

    public void Dispose() => _temp.Dispose();
}
