using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Harvest;

/// <summary>
/// The harvesting figures and the drain across real processes: a `pipelines server` (which runs
/// jobs too) and a `pipelines worker` on PostgreSQL, a run of real containers, the API, the
/// dashboard's Workers page, `pipelines workers` and `pipelines worker --drain`. Not in the
/// "harvest" collection: it suspends nothing and asserts no owner's load (its when-idle worker
/// may admit nothing on a busy machine, and the test allows for that), and its processes are
/// its own, so it runs beside other collections.
/// </summary>
[Integration]
public sealed class HarvestEndToEndTests(ShortHoldServerFixture fixture) : IClassFixture<ShortHoldServerFixture>, IDisposable
{
    private readonly List<Process> _processes = [];

    [Fact]
    public async Task Workers_publish_their_figures_and_a_drain_finishes_what_runs_and_takes_nothing_new()
    {
        // The server runs tasks at policy always (the tests' setting); this worker is when-idle,
        // and on a machine that others keep busy it may admit nothing: the server's tasks go on.
        var worker = CliRunner.Start(["worker", "--roles", "worker", "--concurrency", "1", "--policy", "when-idle"], fixture.Env);
        _processes.Add(worker);
        var startLine = await worker.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Matches(@"^worker \S+ started \(worker\); harvesting: policy when-idle, containers cpu\.idle=1 on /sys/fs/cgroup/cpu/pipelines \(hybrid cgroup v1 \+ v2, the engine's cgroup driver cgroupfs\)", startLine);
        var name = startLine!.Split(' ')[1];

        using var http = fixture.Server.Client();
        var workers = await WaitAsync(
            async () =>
            {
                var list = await http.GetFromJsonAsync<JsonElement>("/api/workers");
                // A worker's first figures may come before its first sample (no "latest" yet).
                return list.GetArrayLength() >= 2 && list.EnumerateArray().Any(w => w.GetProperty("worker").GetString() == name)
                    && list.EnumerateArray().All(w => w.GetProperty("status").TryGetProperty("latest", out var l) && l.ValueKind == JsonValueKind.Object) ? list : (JsonElement?)null;
            },
            "both workers' sampled figures in GET /api/workers");
        Assert.All(workers.EnumerateArray(), w =>
        {
            var status = w.GetProperty("status");
            var mine = w.GetProperty("worker").GetString() == name;
            Assert.Equal(mine ? "when-idle" : "always", status.GetProperty("policy").GetString());
            Assert.StartsWith(mine ? "cpu.idle=1 on /sys/fs/cgroup/cpu/pipelines " : "normal weight on /sys/fs/cgroup/cpu/pipelines-always", status.GetProperty("idleMode").GetString(), StringComparison.Ordinal);
            Assert.True(status.GetProperty("latest").GetProperty("cores").GetInt32() > 0);
        });

        var ready = await http.GetFromJsonAsync<JsonElement>("/readyz");
        Assert.StartsWith("policy always, containers normal weight on /sys/fs/cgroup/cpu/pipelines-always", ready.GetProperty("checks").GetProperty("harvest").GetProperty("detail").GetString(), StringComparison.Ordinal);
        var page = await http.GetStringAsync("/hangfire/workers");
        Assert.Contains($"data-worker=\"{name}\"", page, StringComparison.Ordinal);
        var cli = await CliRunner.RunAsync(["workers"], fixture.Env);
        Assert.True(cli.ExitCode == 0, cli.ToString());
        Assert.Contains(name, cli.Stdout, StringComparison.Ordinal);
        using (var unknown = await http.PostAsync("/api/workers/no-such-worker/drain", null))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }

        // Ten tasks of 6 s each, three at a time (the server's two and the worker's one).
        var runId = await ServerFixture.SubmitAsync(http, Napping(6));
        await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("counts").GetProperty("running").GetInt32() > 0, TimeSpan.FromMinutes(2));
        var drain = await CliRunner.RunAsync(["worker", "--drain"], fixture.Env, TimeSpan.FromMinutes(3));
        Assert.True(drain.ExitCode == 0, drain.ToString());
        Assert.Contains("drained", drain.Stdout, StringComparison.Ordinal);

        // What ran finished; what had not started stays queued, for two holds and more (real time
        // is the scenario: longer than two Harvest:AdmissionHold, 2 s here, so that the queued jobs
        // have come to the drained workers and been handed back).
        var after = await ServerFixture.GetRunAsync(http, runId);
        var counts = after.GetProperty("counts");
        Assert.Equal(0, counts.GetProperty("running").GetInt32());
        Assert.True(counts.GetProperty("succeeded").GetInt32() > 0, after.ToString());
        Assert.True(counts.GetProperty("queued").GetInt32() > 0, after.ToString());
        await Task.Delay(ShortHoldServerFixture.AdmissionHold * 2.5);
        var later = (await ServerFixture.GetRunAsync(http, runId)).GetProperty("counts");
        Assert.Equal(counts.GetProperty("succeeded").GetInt32(), later.GetProperty("succeeded").GetInt32());
        Assert.Equal(0, later.GetProperty("running").GetInt32());
        var drained = await http.GetFromJsonAsync<JsonElement>("/api/workers");
        Assert.All(drained.EnumerateArray(), w => Assert.True(w.GetProperty("status").GetProperty("draining").GetBoolean()));
    }

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit();
            }

            p.Dispose();
        }
    }

    private string Napping(int seconds) => $$"""
        version: 1
        name: napping
        input:
          uri: s3://{{fixture.Bucket}}/raw/
          include: ["lane1/*.fastq"]
          batch: 10
        steps:
          - name: nap
            image: pipelines-samples/pair-check:1
            command: ["busybox", "sleep", "{{seconds}}"]
            resources: { cpus: 0.1, memory: 32Mi, timeout: 5m }
            outputs: ["*.tsv"]
        output:
          uri: s3://{{fixture.Bucket}}/napping/
        """;

    private static async Task<JsonElement> WaitAsync(Func<Task<JsonElement?>> probe, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (await probe() is { } found)
            {
                return found;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"waited 90 s for {what}");
            await Task.Delay(500);
        }
    }
}
