using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Deploy;

/// <summary>
/// The deployment a user starts with `docker-compose up`: every service healthy by its own check,
/// buckets made by the init service, the sample workflow submitted through the server's
/// published port with a key surviving a worker killed in the middle of it, functions invoked
/// synchronously and asynchronously, and the workers harvesting with the host's cgroup tree.
/// </summary>
[Collection("compose")]
[Integration]
public sealed class ComposeTests(ComposeFixture compose) : IClassFixture<ComposeFixture>
{
    [Fact]
    public async Task Every_service_is_healthy_and_the_init_service_made_the_buckets()
    {
        foreach (var id in await compose.ContainersAsync())
        {
            var c = await compose.InspectAsync(id);
            var service = c.GetProperty("Config").GetProperty("Labels").GetProperty("com.docker.compose.service").GetString();
            var state = c.GetProperty("State");
            if (service == "s3-init")
            {
                Assert.Equal(0, state.GetProperty("ExitCode").GetInt32());
                continue;
            }

            Assert.Equal("healthy", state.GetProperty("Health").GetProperty("Status").GetString());
        }

        Assert.Equal(2, (await compose.ContainersAsync("worker")).Count);
        var buckets = (await compose.Stores.S3Client.ListBucketsAsync()).Buckets.Select(b => b.BucketName).ToList();
        Assert.Superset(new HashSet<string> { "pipelines", "raw-reads", "results" }, buckets.ToHashSet());

        // The key opens the published port; without it the server answers 401.
        using var anonymous = new HttpClient { BaseAddress = new Uri(compose.ServerUrl) };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/runs")).StatusCode);
        using var http = compose.Client();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/runs")).StatusCode);
    }

    [Fact]
    public async Task A_worker_in_a_container_puts_its_containers_parent_on_the_hosts_cgroup_tree_in_the_idle_class()
    {
        // The test's workers run --policy always (deploy/compose/test.yml); they too made their
        // parent on the host's tree, from inside their containers, at the normal weight.
        var always = CpuFolder(compose.CgroupParent + "-always");
        Assert.Equal("0", File.ReadAllText(Path.Combine(always, "cpu.idle")).Trim());

        // One more worker with the shipped command line (when-idle) and the same service: the
        // same mounts, AppArmor setting and environment.
        var oneOff = (await compose.ComposeAsync(["run", "-d", "--no-deps", "worker", "worker", "--concurrency", "1", "--roles", "worker", "--policy", "when-idle"])).Trim().Split('\n')[^1];
        try
        {
            var line = $"policy when-idle, containers cpu.idle=1 on {CpuFolder(compose.CgroupParent)}";
            var clock = Stopwatch.StartNew();
            while (!(await ComposeFixture.LogsAsync(oneOff)).Contains(line, StringComparison.Ordinal))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), $"the when-idle worker did not say '{line}':\n{await ComposeFixture.LogsAsync(oneOff)}");
                await Task.Delay(500);
            }

            // Written by the worker inside its container, through the bind of /sys/fs/cgroup: the host's file.
            Assert.Equal("1", File.ReadAllText(Path.Combine(CpuFolder(compose.CgroupParent), "cpu.idle")).Trim());
        }
        finally
        {
            await HostCommand.RunAsync("docker", ["stop", "--time", "30", oneOff], timeout: TimeSpan.FromMinutes(2));
            await HostCommand.RunAsync("docker", ["rm", "-f", oneOff]);
        }
    }

    [Fact]
    public async Task The_sample_workflow_through_the_server_ends_succeeded_with_every_row_once_when_a_worker_is_killed_in_the_middle()
    {
        var input = compose.Stores.Open("s3://raw-reads/fastq/");
        var files = Directory.EnumerateFiles(TestEnvironment.SampleFastq, "*", SearchOption.AllDirectories).ToList();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (f, ct) =>
            await input.Store.UploadAsync(input.Key(Path.GetRelativePath(TestEnvironment.SampleFastq, f)), f, ct));

        // As a user submits it: the CLI on this machine, the server's published port, the key.
        using var cli = CliRunner.Start(
            ["run", Path.Combine(TestEnvironment.RepoRoot, "workflows", "fastq-stats.yaml"), "--server", compose.ServerUrl,
             "--set", "input.uri=s3://raw-reads/fastq/", "--set", "output.uri=s3://results/fastq-stats/", "--set", "input.batch=2"],
            new Dictionary<string, string?> { ["PIPELINES_SERVER_KEY"] = ComposeFixture.Key });
        var stdout = new StringBuilder();
        var runIdSeen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        cli.OutputDataReceived += (_, e) =>
        {
            lock (stdout)
            {
                stdout.AppendLine(e.Data);
            }

            if (e.Data?.StartsWith("run ", StringComparison.Ordinal) == true)
            {
                runIdSeen.TrySetResult(e.Data.Split(' ')[1].TrimEnd(':'));
            }
        };
        cli.ErrorDataReceived += (_, e) =>
        {
            lock (stdout)
            {
                stdout.AppendLine(e.Data);
            }
        };
        cli.BeginOutputReadLine();
        cli.BeginErrorReadLine();
        var runId = await runIdSeen.Task.WaitAsync(TimeSpan.FromMinutes(2));
        using var http = compose.Client();

        // Kill the worker of a task that is running, once some have succeeded: the middle of the
        // run. Its process is killed from the host, as the kernel's OOM killer would (a `docker
        // kill` counts as stopped by hand, which restart: unless-stopped respects).
        var victim = await RunningWorkerAsync(http, runId);
        var pid = (await compose.InspectAsync(victim)).GetProperty("State").GetProperty("Pid").GetInt32();
        await HostCommand.CheckAsync("kill", ["-KILL", pid.ToString(CultureInfo.InvariantCulture)]);

        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8)))
        {
            await cli.WaitForExitAsync(timeout.Token);
        }

        string printed;
        lock (stdout)
        {
            printed = stdout.ToString();
        }

        Assert.True(cli.ExitCode == 0, $"pipelines run exited {cli.ExitCode}\n{printed}");
        var run = JsonDocument.Parse(await http.GetStringAsync($"/api/runs/{runId}")).RootElement;
        Assert.Equal("succeeded", run.GetProperty("state").GetString());
        Assert.Equal(100, run.GetProperty("counts").GetProperty("succeeded").GetInt32());
        Assert.Equal(100, run.GetProperty("counts").GetProperty("total").GetInt32());

        var folder = new RunFolder(compose.Stores.Open("s3://results/fastq-stats/").Child(runId));
        var rows = await folder.ResultAsync("stats");
        Assert.Equal(200, rows.Count);
        Assert.Equal(files.Select(f => Path.GetRelativePath(TestEnvironment.SampleFastq, f)).Order(StringComparer.Ordinal), rows.Select(r => (string)r["file"]!).Order(StringComparer.Ordinal));
        foreach (var row in rows)
        {
            var expected = FastqReference.Compute(Path.Combine(TestEnvironment.SampleFastq, (string)row["file"]!));
            Assert.Equal(expected.Reads, row["reads"]);
            Assert.Equal(expected.Gc, ((double)row["gc"]!).ToString("F6", CultureInfo.InvariantCulture));
        }

        // The killed worker's task was run again by another delivery; the provenance says which ran it.
        var provenance = await folder.ProvenanceAsync();
        Assert.Equal(100, provenance.Where(p => p.Status == "succeeded").Select(p => p.TaskId).Distinct().Count());

        // restart: unless-stopped brought the killed worker back, and it is healthy again.
        var restarted = await compose.InspectAsync(victim);
        Assert.True(restarted.GetProperty("RestartCount").GetInt32() >= 1, restarted.GetProperty("State").ToString());
    }

    [Fact]
    public async Task A_function_is_invoked_synchronously_by_the_server_and_asynchronously_by_a_worker()
    {
        using var http = compose.Client();
        using (var deploy = await http.PostAsync("/api/functions", new StringContent("name: wordcount\nimage: pipelines-examples/warm-fork:1\ncommand: [\"wordcount\"]\n")))
        {
            Assert.True(deploy.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK, await deploy.Content.ReadAsStringAsync());
        }

        using (var sync = await http.PostAsync("/api/functions/wordcount/invoke?filename=notes.txt", new StringContent("one two\nthree\n")))
        {
            Assert.True(sync.StatusCode == HttpStatusCode.OK, await sync.Content.ReadAsStringAsync());
            Assert.Equal("file\tlines\twords\tbytes\nnotes.txt\t2\t3\t14\n", await sync.Content.ReadAsStringAsync());
        }

        string location;
        using (var accepted = await http.PostAsync("/api/functions/wordcount/invoke?async=true&filename=later.txt", new StringContent("four five six")))
        {
            Assert.True(accepted.StatusCode == HttpStatusCode.Accepted, await accepted.Content.ReadAsStringAsync());
            location = accepted.Headers.Location!.OriginalString;
        }

        var clock = Stopwatch.StartNew();
        JsonElement done;
        while (true)
        {
            done = JsonDocument.Parse(await http.GetStringAsync(location)).RootElement;
            if (done.GetProperty("status").GetString() is not ("queued" or "running"))
            {
                break;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(3), $"still {done}");
            await Task.Delay(500);
        }

        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.Equal("file\tlines\twords\tbytes\nlater.txt\t0\t3\t13\n", await http.GetStringAsync(done.GetProperty("outputUrl").GetString()));

        // The server has no worker role here: a worker container ran it, from the shared bucket.
        var stored = compose.Stores.Open("s3://pipelines/functions/wordcount/");
        Assert.NotEmpty(await stored.Store.ListAsync(stored.Prefix, CancellationToken.None).ToListAsync());
    }

    /// <summary>Waits until a task has succeeded and another runs, and returns the container of a worker running one.</summary>
    private async Task<string> RunningWorkerAsync(HttpClient http, string runId)
    {
        var workers = (await compose.ContainersAsync("worker")).ToList();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(3))
        {
            var run = JsonDocument.Parse(await http.GetStringAsync($"/api/runs/{runId}")).RootElement;
            if (run.GetProperty("counts").GetProperty("succeeded").GetInt32() > 0)
            {
                var tasks = JsonDocument.Parse(await http.GetStringAsync($"/api/runs/{runId}/tasks?state=running")).RootElement;
                foreach (var task in tasks.GetProperty("items").EnumerateArray())
                {
                    var worker = task.TryGetProperty("worker", out var w) ? w.GetString() : null;
                    var container = workers.FirstOrDefault(c => worker?.StartsWith(c[..12] + ":", StringComparison.Ordinal) == true);
                    if (container is not null)
                    {
                        return container;
                    }
                }
            }

            Assert.NotEqual("succeeded", run.GetProperty("state").GetString());
            await Task.Delay(200);
        }

        throw new TimeoutException($"no task of run {runId} was seen running on a worker after one succeeded");
    }

    /// <summary>Where this machine sets a cgroup's CPU class (the engine's cgroupfs driver names the parent /NAME).</summary>
    private static string CpuFolder(string parent) =>
        Pipelines.Containers.Cgroups.CgroupMounts.Machine.CpuFolder("/" + parent) ?? throw new InvalidOperationException("this machine mounts no cpu controller");
}
