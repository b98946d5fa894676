using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Harvest;

/// <summary>
/// `pipelines worker --drain` against real processes: a `pipelines server` (two task slots) and a
/// `pipelines worker` (two more) on PostgreSQL, both at policy always, and real containers that
/// run until the test lets them end (each waits for /tmp/go, which the test makes with an exec),
/// so that slots come free exactly when the test says: right after the drain was asked. Not in
/// the "harvest" collection: at policy always nothing here reads the owner's load or suspends a
/// container, and the server and worker are its own, so it runs beside other collections.
/// </summary>
[Integration]
public sealed class DrainTests(ShortHoldServerFixture fixture) : IClassFixture<ShortHoldServerFixture>, IDisposable
{
    private readonly List<Process> _processes = [];
    private readonly DockerClient _docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();

    [Fact]
    public async Task Once_drain_says_draining_no_new_task_starts_though_slots_come_free_at_once()
    {
        var worker = CliRunner.Start(["worker", "--roles", "worker", "--concurrency", "2", "--policy", "always"], fixture.Env);
        _processes.Add(worker);
        var startLine = await worker.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(90));
        Assert.Contains("harvesting: policy always", startLine, StringComparison.Ordinal);
        using var http = fixture.Server.Client();
        await Eventually.WaitAsync(
            async () => (await http.GetFromJsonAsync<JsonElement>("/api/workers")).GetArrayLength() >= 2 ? true : (bool?)null,
            () => "both workers' figures in GET /api/workers");

        // Eight tasks; the four slots take four, which wait to be let go.
        var runId = await ServerFixture.SubmitAsync(http, Waiting());
        var running = await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("counts").GetProperty("running").GetInt32() == 4, TimeSpan.FromMinutes(3));
        Assert.Equal(4, running.GetProperty("counts").GetProperty("queued").GetInt32());

        var drain = CliRunner.Start(["worker", "--drain"], fixture.Env);
        _processes.Add(drain);
        var said = await drain.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(90));
        Assert.StartsWith("draining ", said, StringComparison.Ordinal);

        // The four slots come free at once; a worker that had not seen the drain yet would take the queued tasks now.
        var waiting = await Eventually.WaitAsync(
            async () => (await ServerFixture.ContainersOfAsync(runId)).Where(c => c.State == "running").ToList() is { Count: 4 } four ? four : null,
            () => "the four tasks' containers");
        foreach (var container in waiting)
        {
            await LetGoAsync(container.ID);
        }

        // A task that started after the drain was asked would wait for ever, and the drain with it.
        var rest = drain.StandardOutput.ReadToEndAsync();
        var seen = "";
        await Eventually.WaitAsync(
            async () =>
            {
                seen = (await ServerFixture.GetRunAsync(http, runId)).GetProperty("counts").ToString();
                return drain.HasExited ? true : (bool?)null;
            },
            () => $"the drain to end; the run's tasks: {seen}");
        await drain.WaitForExitAsync();
        Assert.True(drain.ExitCode == 0, said + await rest);
        Assert.Contains("drained: no task runs on them", await rest, StringComparison.Ordinal);

        var counts = (await ServerFixture.GetRunAsync(http, runId)).GetProperty("counts");
        Assert.Equal((4, 0, 4), (counts.GetProperty("succeeded").GetInt32(), counts.GetProperty("running").GetInt32(), counts.GetProperty("queued").GetInt32()));

        // And stays so: the queued tasks' jobs come to the drained workers, which hand them back
        // (Harvest:AdmissionHold, 2 s here, each); none has started a container. Real time is the
        // scenario: longer than two holds, so that every job has come and been handed back.
        await Task.Delay(ShortHoldServerFixture.AdmissionHold * 2.5);
        var later = (await ServerFixture.GetRunAsync(http, runId)).GetProperty("counts");
        Assert.Equal((4, 0, 4), (later.GetProperty("succeeded").GetInt32(), later.GetProperty("running").GetInt32(), later.GetProperty("queued").GetInt32()));
        Assert.Empty(await ServerFixture.ContainersOfAsync(runId));
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

        _docker.Dispose();
    }

    /// <summary>Lets a waiting task's container end: makes /tmp/go in it, as its user.</summary>
    private async Task LetGoAsync(string containerId)
    {
        var exec = await _docker.Exec.CreateContainerExecAsync(containerId, new ContainerExecCreateParameters { User = "65534:65534", Cmd = ["busybox", "touch", "/tmp/go"] });
        using var stream = await _docker.Exec.StartContainerExecAsync(exec.ID, new ContainerExecStartParameters());
        await stream.ReadOutputToEndAsync(CancellationToken.None);
    }

    private string Waiting() => $$"""
        version: 1
        name: waiting
        input:
          uri: s3://{{fixture.Bucket}}/raw/
          include: ["lane1/*.fastq"]
          batch: 10
        steps:
          - name: wait
            image: pipelines-samples/pair-check:1
            command: ["sh", "-c", "while [ ! -e /tmp/go ]; do busybox usleep 100000; done; echo n > /out/done.tsv"]
            resources: { cpus: 0.1, memory: 32Mi, timeout: 5m }
            outputs: ["*.tsv"]
            # A container per task: each waits for its own /tmp/go, and none may start while drained.
            reuse: false
        output:
          uri: s3://{{fixture.Bucket}}/waiting/
        """;
}
