using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Deploy;

/// <summary>
/// The shipped docker-compose.yml started for real with Debian's docker-compose, as a user
/// starts it: the images scripts/build-deploy-images makes (the engine's from the shipped
/// Dockerfile), the compose test's override (deploy/compose/test.yml: local PostgreSQL and Swift
/// images, this test's own cgroups), its own project name, scratch folder and loopback ports.
/// Everything it made is removed at the end: the project's containers, networks and volumes, the
/// algorithm containers its engines started, the scratch folder and the cgroups.
/// </summary>
public sealed class ComposeFixture : IAsyncLifetime
{
    public const string Key = "compose-test-key-0123456789abcdef";

    private readonly string _id = Guid.NewGuid().ToString("N")[..8];
    private readonly TempFolder _temp = new();
    private readonly List<string> _engineHosts = [];

    public string Project => "pipelinesdeploy" + _id;

    /// <summary>The cgroup parent of the workers' containers, and the owner's cgroup they measure: the test's own.</summary>
    public string CgroupParent => "pipelines-compose-" + _id;

    public string OwnerCgroup => "pipelines-compose-owner-" + _id;

    public string ServerUrl { get; private set; } = "";

    public string S3Endpoint { get; private set; } = "";

    public ObjectStoreFactory Stores { get; private set; } = null!;

    /// <summary>How long `docker-compose up` took, from images built to every service started.</summary>
    public TimeSpan UpTook { get; private set; }

    public string ImagesOutput { get; private set; } = "";

    private Dictionary<string, string?> Env { get; } = [];

    public async Task InitializeAsync()
    {
        // Quiet and quick when every image is up to date; from nothing it debootstraps Debian and
        // builds every image (docs/benchmarks.md says how long). scripts/test starts it in the
        // background before the build and says where its end will be written.
        ImagesOutput = await DeployImages.BuiltAsync(TimeSpan.FromMinutes(45));
        foreach (var image in new[] { "pipelines-samples/fastq-stats:1", "pipelines-examples/warm-fork:1" })
        {
            Assert.True((await HostCommand.RunAsync("docker", ["image", "inspect", image])).ExitCode == 0, $"{image} is not on the engine: run scripts/build-images (scripts/test does)");
        }

        foreach (var folder in Pipelines.Containers.Cgroups.CgroupMounts.Machine.Folders("/" + OwnerCgroup))
        {
            Directory.CreateDirectory(folder);
        }

        var serverPort = FreePort();
        var s3Port = FreePort();
        ServerUrl = $"http://127.0.0.1:{serverPort}";
        S3Endpoint = $"http://127.0.0.1:{s3Port}";
        Env["PIPELINES_KEY"] = Key;
        Env["POSTGRES_PASSWORD"] = "compose-test-" + _id;
        Env["S3_ACCESS_KEY"] = "test:tester";
        Env["S3_SECRET_KEY"] = "testing";
        Env["PIPELINES_PORT"] = serverPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Env["S3_PORT"] = s3Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Env["PIPELINES_SCRATCH"] = _temp.Combine("scratch");
        Env["TEST_CGROUP_PARENT"] = CgroupParent;
        Env["TEST_OWNER_CGROUP"] = OwnerCgroup;

        // The engine the test runs on, wherever its socket is: a bind of a path with no socket
        // would make the engine create a folder there, and no daemon could listen on it again.
        Env["DOCKER_SOCKET"] = new Uri(TestEnvironment.DockerEndpoint).AbsolutePath;
        Stores = new ObjectStoreFactory(new S3Settings(S3Endpoint, "test:tester", "testing", "us-east-1"));

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await ComposeAsync(["up", "-d"], TimeSpan.FromMinutes(10));
        await WaitUntilHealthyAsync(TimeSpan.FromMinutes(3));
        UpTook = clock.Elapsed;
        foreach (var id in await ContainersAsync())
        {
            _engineHosts.Add(id[..12]);
        }
    }

    public async Task DisposeAsync()
    {
        var down = await HostCommand.RunAsync("docker-compose", [.. ComposeArgs, "down", "-v", "--remove-orphans", "--timeout", "30"], Env, TimeSpan.FromMinutes(5));

        // Containers the engines started on the host's engine: labelled with their owner, whose
        // host is the engine container's hostname (its short id).
        foreach (var host in _engineHosts)
        {
            var left = await HostCommand.RunAsync("docker", ["ps", "-aq", "--filter", "label=org.pipelines.managed=true"]);
            foreach (var id in left.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var owner = await HostCommand.RunAsync("docker", ["inspect", "--format", "{{ index .Config.Labels \"org.pipelines.owner\" }}", id]);
                if (owner.Stdout.StartsWith(host + "/", StringComparison.Ordinal))
                {
                    await HostCommand.RunAsync("docker", ["rm", "-f", id]);
                }
            }
        }

        // runc makes the parents in every hierarchy (cpuset, devices, the v2 tree beside v1 ...).
        foreach (var hierarchy in Directory.EnumerateDirectories("/sys/fs/cgroup").Prepend("/sys/fs/cgroup"))
        {
            foreach (var group in new[] { CgroupParent, CgroupParent + "-always", OwnerCgroup })
            {
                RemoveCgroupTree(Path.Combine(hierarchy, group));
            }
        }

        Stores.Dispose();
        _temp.Dispose();
        Assert.True(down.ExitCode == 0, "docker-compose down: " + down);
    }

    public HttpClient Client()
    {
        var http = new HttpClient { BaseAddress = new Uri(ServerUrl), Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Key);
        return http;
    }

    /// <summary>`docker-compose -p PROJECT -f docker-compose.yml -f deploy/compose/test.yml ARGS`, which must succeed.</summary>
    public Task<string> ComposeAsync(IEnumerable<string> args, TimeSpan? timeout = null) =>
        HostCommand.CheckAsync("docker-compose", [.. ComposeArgs, .. args], Env, timeout ?? TimeSpan.FromMinutes(2));

    /// <summary>The ids of the project's containers (of one service, or all), running or not.</summary>
    public async Task<IReadOnlyList<string>> ContainersAsync(string? service = null) =>
        (await ComposeAsync(service is null ? ["ps", "-q"] : ["ps", "-q", service])).Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>What a container printed so far (stdout and stderr).</summary>
    public static async Task<string> LogsAsync(string container)
    {
        var logs = await HostCommand.RunAsync("docker", ["logs", container]);
        return logs.Stdout + logs.Stderr;
    }

    public async Task<JsonElement> InspectAsync(string container) =>
        JsonDocument.Parse(await HostCommand.CheckAsync("docker", ["inspect", container])).RootElement[0];

    private string[] ComposeArgs =>
    [
        "--project-name", Project,
        "--project-directory", TestEnvironment.RepoRoot,
        "-f", Path.Combine(TestEnvironment.RepoRoot, "docker-compose.yml"),
        "-f", Path.Combine(TestEnvironment.RepoRoot, "deploy", "compose", "test.yml"),
    ];

    /// <summary>Every long-running service reports healthy by its own check; the init service ended with 0.</summary>
    private async Task WaitUntilHealthyAsync(TimeSpan limit)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var states = new List<string>();
            foreach (var id in await ContainersAsync())
            {
                var c = await InspectAsync(id);
                var service = c.GetProperty("Config").GetProperty("Labels").GetProperty("com.docker.compose.service").GetString()!;
                var state = c.GetProperty("State");
                states.Add(service == "s3-init"
                    ? $"{service}:exit {state.GetProperty("ExitCode").GetInt32()}"
                    : $"{service}:{(state.TryGetProperty("Health", out var h) ? h.GetProperty("Status").GetString() : "no health check")}");
            }

            if (states.Count == 6 && states.All(s => s.EndsWith(":healthy", StringComparison.Ordinal) || s == "s3-init:exit 0"))
            {
                return;
            }

            if (clock.Elapsed > limit)
            {
                var logs = await HostCommand.RunAsync("docker-compose", [.. ComposeArgs, "logs", "--no-color", "--tail", "40"], Env);
                Assert.Fail($"not every service became healthy in {limit}: {string.Join(", ", states)}\n{logs.Stdout}");
            }

            await Task.Delay(1000);
        }
    }

    private static void RemoveCgroupTree(string dir)
    {
        if (!Directory.Exists(dir))
        {
            return;
        }

        foreach (var child in Directory.EnumerateDirectories(dir))
        {
            RemoveCgroupTree(child);
        }

        try
        {
            Directory.Delete(dir);
        }
        catch (IOException)
        {
            // A cgroup that still holds a process: its container is being removed; the next run's sweep takes it.
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
