using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Pipelines.Containers;
using Pipelines.Containers.Cgroups;
using Pipelines.RunStore;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;
using Pipelines.Usage;

namespace Pipelines.Tests.Harvest;

/// <summary>
/// Vacate across machines, all of it real: a `pipelines server` (API only) and two `pipelines
/// worker` processes on PostgreSQL, a real container on worker A, a synthetic owner on A's
/// machine that stays busy, A's freezer holding the container, the vacate after
/// Harvest:VacateAfter, and the task completing on worker B, recorded once. And the dispatcher's
/// capacity from the harvesters: a worker whose busy owner leaves no slot is released no task.
/// </summary>
[Collection("harvest")]
[Integration]
public sealed class VacateEndToEndTests(ApiServerFixture fixture) : IClassFixture<ApiServerFixture>, IDisposable
{

    // One core's worth: A's owner stays above SuspendAbove (a third of the machine on two
    // cores or more would do), and the other core is left for worker B and the machine.
    private readonly OwnerBurner _owner = new(loops: 1, cgroup: $"pipelines-tests-owner-{Guid.NewGuid():N}"[..36]);
    private readonly List<WorkerProcess> _workers = [];

    [Fact]
    public async Task A_task_vacated_by_a_busy_owner_on_worker_A_completes_on_worker_B_recorded_once()
    {
        var a = await StartWorkerAsync(new Dictionary<string, string?>
        {
            ["PIPELINES_Harvest__Policy"] = "when-idle",
            ["PIPELINES_Harvest__OwnerCgroup"] = _owner.Group,
            ["PIPELINES_Harvest__StartBelow"] = "0.2",
            ["PIPELINES_Harvest__StartAfter"] = "00:00:00",
            ["PIPELINES_Harvest__SuspendAbove"] = "0.3",
            ["PIPELINES_Harvest__SuspendAfter"] = "00:00:01",
            ["PIPELINES_Harvest__ResumeAfter"] = "00:00:05",
            ["PIPELINES_Harvest__VacateAfter"] = "00:00:05",
            ["PIPELINES_Harvest__AdmissionHold"] = "00:00:02",
        });
        Assert.Contains("harvesting: policy when-idle, containers cpu.idle=1", a.StartLine, StringComparison.Ordinal);

        using var http = fixture.Server.Client();
        var runId = await ServerFixture.SubmitAsync(http, CountingFor(fixture.Bucket, "vacate"));

        // Only A runs yet: the task's container is A's.
        var containerId = await Eventually.WaitAsync(
            async () => (await ServerFixture.ContainersOfAsync(runId)).FirstOrDefault(c => c.State == "running")?.ID,
            () => $"the task's container to run on worker A\n{a.Output}");
        Assert.Equal(FreezerState.Thawed, Freezer.StateOf("pipelines", containerId));

        _owner.Start();

        // Freezing until every task of the container has reached the freezer (a task of the idle
        // class may take a while to run at all), then frozen.
        await Eventually.WaitAsync(
            async () => Freezer.Holds(Freezer.StateOf("pipelines", containerId)) ? true : (bool?)null,
            () => $"worker A to suspend the container in the freezer ({Freezer.StateOf("pipelines", containerId)})\n{a.Output}");
        var b = await StartWorkerAsync([]);
        Assert.Contains("harvesting: policy always", b.StartLine, StringComparison.Ordinal);

        // A vacates (the attempt's rows wait under tasks/<task>/vacated/), and B completes the task.
        // A failure says why: the run, the task's row (state, worker, lease, attempts), and what both workers printed.
        var last = "";
        var output = new RunFolder(fixture.Stores.Open($"s3://{fixture.Bucket}/counting/{runId}/"));
        await Eventually.WaitAsync(
            async () =>
            {
                last = $"--- tasks ---\n{await http.GetStringAsync($"/api/runs/{runId}/tasks")}";
                return await output.Location.Store.ListAsync(output.Location.Key("tasks/"), CancellationToken.None).AnyAsync(o => o.Key.Contains("/vacated/", StringComparison.Ordinal)) ? true : (bool?)null;
            },
            () => $"worker A to vacate the task\n{last}\n--- A ---\n{a.Output}\n--- B ---\n{b.Output}");
        var run = (await Eventually.WaitAsync<JsonElement?>(
            async () =>
            {
                var r = await ServerFixture.GetRunAsync(http, runId);
                last = $"{r}\n--- tasks ---\n{await http.GetStringAsync($"/api/runs/{runId}/tasks")}";
                return r.GetProperty("state").GetString() is "succeeded" or "failed" or "cancelled" ? r : (JsonElement?)null;
            },
            () => $"the run to end, with the task completed on worker B\n{last}\n--- A ---\n{a.Output}\n--- B ---\n{b.Output}"))!.Value;
        _owner.Stop();
        Assert.True(run.GetProperty("state").GetString() == "succeeded", $"{last}\n--- A ---\n{a.Output}\n--- B ---\n{b.Output}");

        var rows = await output.ProvenanceAsync();
        Assert.Equal(
            [("vacated", 1, a.Name), ("succeeded", 2, b.Name)],
            rows.OrderBy(r => r.Attempt).Select(r => (r.Status, r.Attempt, r.Worker)));
        Assert.StartsWith("vacated: the machine's owner needed it back", rows.Single(r => r.Status == "vacated").Error, StringComparison.Ordinal);

        // The step's log has both attempts under those numbers; the vacated attempt's record has left the run's output.
        var taskId = rows[0].TaskId;
        var log = System.Text.Encoding.UTF8.GetString(await output.Location.Store.ReadAllAsync(output.Location.Key($"tasks/{taskId}/count.log"), CancellationToken.None));
        Assert.Matches("(?s)^=== pipelines: count attempt 1, vacated: the machine's owner needed it back.*=== pipelines: count attempt 2, exit 0", log);
        Assert.False(await output.Location.Store.ListAsync(output.Location.Key("tasks/"), CancellationToken.None).AnyAsync(o => o.Key.Contains("/vacated/", StringComparison.Ordinal)));

        // The usage ledger: one record per delivery, A's vacated (wasted, harvested in the idle class), B's succeeded.
        await using (var db = await TestEnvironment.PostgresAsync())
        {
            var usage = await new PostgresUsageStore(db, fixture.Env["PIPELINES_Schema"]!).ForRunAsync(runId, CancellationToken.None);
            Assert.Equal(
                [(1, UsageOutcomes.Vacated, a.Name, true), (2, UsageOutcomes.Succeeded, b.Name, false)],
                usage.Select(u => (u.Delivery!.Value, u.Outcome, u.Worker!, u.Harvested)));
            Assert.StartsWith("vacated: the machine's owner needed it back", usage[0].Reason, StringComparison.Ordinal);
        }

        // retries: 0, so a vacate counted as a failure would have failed the task.
        Assert.Equal(1, run.GetProperty("counts").GetProperty("succeeded").GetInt32());
        Assert.Equal(0, run.GetProperty("counts").GetProperty("failed").GetInt32());

        // Exactly one row per input in the results: nothing of the vacated attempt, nothing twice.
        var inputs = Directory.EnumerateFiles(Path.Combine(TestEnvironment.SampleFastq, "lane1"), "*.fastq").Select(f => "/in/lane1/" + Path.GetFileName(f)).Order(StringComparer.Ordinal).ToList();
        var result = await output.ResultAsync("counted");
        Assert.Equal(inputs, result.Select(r => (string)r["file"]!).Order(StringComparer.Ordinal).ToList());

        // The run's warm containers are retired once it has no task left (WarmSteps), just after its end.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while ((await ServerFixture.ContainersOfAsync(runId)).Count > 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"the containers of run {runId} are still there a minute after it ended");
            await Task.Delay(250);
        }
    }

    [Fact]
    public async Task A_worker_whose_busy_owner_leaves_no_slot_is_released_no_task_until_the_owner_leaves()
    {
        // A burning core is far above StartBelow: A's harvester offers no slot, and says so on the board.
        _owner.Start();
        var a = await StartWorkerAsync(new Dictionary<string, string?>
        {
            ["PIPELINES_Harvest__Policy"] = "when-idle",
            ["PIPELINES_Harvest__OwnerCgroup"] = _owner.Group,
            ["PIPELINES_Harvest__StartBelow"] = "0.1",
            ["PIPELINES_Harvest__StartAfter"] = "00:00:00",
            ["PIPELINES_Harvest__AdmissionHold"] = "00:00:02",
        });
        using var http = fixture.Server.Client();
        await Eventually.WaitAsync(
            async () => (await http.GetFromJsonAsync<JsonElement>("/api/workers")).EnumerateArray().Any(w => w.GetProperty("worker").GetString() == a.Name
                && w.GetProperty("status").TryGetProperty("latest", out var latest) && latest.GetProperty("ownerFraction").GetDouble() > 0.1) ? true : (bool?)null,
            () => $"worker A's figures to show its owner's load\n{a.Output}");

        // The dispatcher (worker A's, the only one) sees no slot offered: the task stays pending, held in A's words.
        var runId = await ServerFixture.SubmitAsync(http, CountingFor(fixture.Bucket, "no-slot"));
        var held = await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("counts").GetProperty("held").GetInt32() == 1, TimeSpan.FromMinutes(2));
        Assert.Equal(1, held.GetProperty("counts").GetProperty("heldBecause").GetProperty("owner_load").GetInt32());
        var hold = JsonDocument.Parse(await http.GetStringAsync($"/api/runs/{runId}/tasks")).RootElement.GetProperty("items")[0].GetProperty("hold");
        Assert.Equal(a.Name, hold.GetProperty("worker").GetString());
        Assert.Matches(@"^the owner's load \(\d+\s?%\) is above Harvest:StartBelow \(10\s?%\)$", hold.GetProperty("detail").GetString());
        Assert.Equal((0L, 0), await ReleasedAndDeliveredAsync(runId));

        // The owner leaves: the offer comes back, the task is released and runs, delivered once (never handed back).
        _owner.Stop();
        var run = await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("state").GetString() is "succeeded" or "failed" or "cancelled", TimeSpan.FromMinutes(3));
        Assert.True(run.GetProperty("state").GetString() == "succeeded", $"{run}\n{a.Output}");
        Assert.Equal((1L, 1), await ReleasedAndDeliveredAsync(runId));
    }

    /// <summary>How many of the run's tasks the dispatcher released, and the most deliveries (claims) one had.</summary>
    private async Task<(long Released, int Deliveries)> ReleasedAndDeliveredAsync(string runId)
    {
        await using var db = await TestEnvironment.PostgresAsync();
        await using var cmd = db.CreateCommand($"SELECT count(*) FILTER (WHERE released_at IS NOT NULL), max(attempts) FROM {fixture.Env["PIPELINES_Schema"]}.tasks WHERE run_id = @run");
        cmd.Parameters.AddWithValue("run", runId);
        await using var row = await cmd.ExecuteReaderAsync();
        Assert.True(await row.ReadAsync());
        return (row.GetInt64(0), row.GetInt32(1));
    }

    public void Dispose()
    {
        _owner.Dispose();
        foreach (var w in _workers)
        {
            w.Dispose();
        }
    }

    /// <summary>
    /// One task over lane1's files that counts for a while (usleep in steps, so that time frozen is
    /// not counted), then writes a row per input. Each test's task is its own (the env names the
    /// test): a task of one test would otherwise be taken from the other's cache and run no container.
    /// </summary>
    private static string CountingFor(string bucket, string test) => $$"""
        version: 1
        name: counting
        input:
          uri: s3://{{bucket}}/raw/
          include: ["lane1/*.fastq"]
          batch: 1000
        steps:
          - name: count
            image: pipelines-samples/pair-check:1
            command: ["sh", "-c", 'i=0; while [ $i -lt 150 ]; do busybox usleep 100000; i=$((i+1)); done; for f in "$@"; do echo "$f,1"; done > /out/rows.csv', "sh", "{inputs}"]
            env: { TEST: {{test}} }
            resources: { cpus: 0.5, memory: 32Mi, timeout: 10m }
            retries: 0
            outputs: ["*.csv"]
        gather:
          - name: counted
            from: count/*.csv
            format: csv
            header: false
            columns: [file, n]
        output:
          uri: s3://{{bucket}}/counting/
        """;

    private async Task<WorkerProcess> StartWorkerAsync(Dictionary<string, string?> env)
    {
        var all = new Dictionary<string, string?>(fixture.Env);
        foreach (var (k, v) in env)
        {
            all[k] = v;
        }

        var worker = new WorkerProcess(CliRunner.Start(["worker", "--roles", "worker", "--concurrency", "1", "--verbose"], all));
        _workers.Add(worker);
        await worker.StartedAsync();
        return worker;
    }

    /// <summary>A `pipelines worker` process: its start line, its name, and what it printed since.</summary>
    private sealed class WorkerProcess(Process process) : IDisposable
    {
        private readonly StringBuilder _output = new();

        public string StartLine { get; private set; } = "";

        public string Name => StartLine.Split(' ')[1];

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        public async Task StartedAsync()
        {
            process.ErrorDataReceived += (_, e) => Append(e.Data);
            process.BeginErrorReadLine();
            while (true)
            {
                var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(90))
                    ?? throw new InvalidOperationException("the worker ended before its start line\n" + Output);
                Append(line);
                if (line.StartsWith("worker ", StringComparison.Ordinal) && line.Contains(" started ", StringComparison.Ordinal))
                {
                    StartLine = line;
                    break;
                }
            }

            // The rest is kept for the failure messages, and so that a full pipe never stops the worker.
            _ = Task.Run(async () =>
            {
                while (await process.StandardOutput.ReadLineAsync() is { } line)
                {
                    Append(line);
                }
            });
        }

        public void Dispose()
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }

            process.Dispose();
        }

        private void Append(string? line)
        {
            if (line is not null)
            {
                lock (_output)
                {
                    _output.AppendLine(line);
                }
            }
        }
    }
}
