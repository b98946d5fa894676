using Docker.DotNet;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Tests.Support;
using Pipelines.Worker;
using Resources = Pipelines.Model.Resources;

namespace Pipelines.Tests.Warm;

/// <summary>
/// What the warm pool tests share: the real Docker engine, the example images that
/// scripts/build-images makes, and a pool per test with its own short WarmRoot.
/// </summary>
public sealed class WarmTestContext : IAsyncDisposable
{
    public const string ForkImage = "pipelines-examples/warm-fork:1";
    public const string HttpImage = "pipelines-examples/warm-http:1";

    private readonly List<DockerWarmPool> _pools = [];
    private readonly List<DockerEngine> _engines = [];

    public WarmTestContext()
    {
        Root = Path.Combine("/tmp", "pw-" + Guid.NewGuid().ToString("N")[..8]);
        Runtime = new DockerEngine(Options());
        Docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
    }

    public string Root { get; }

    public DockerEngine Runtime { get; }

    public DockerClient Docker { get; }

    public static string Helper => Path.Combine(TestEnvironment.RepoRoot, ".build", "native", "warm-helper");

    public static string BadHelper => Path.Combine(TestEnvironment.RepoRoot, ".build", "native", "bad-helper");

    public DockerOptions Options(Func<DockerOptions, DockerOptions>? change = null)
    {
        var options = new DockerOptions
        {
            Endpoint = TestEnvironment.DockerEndpoint,
            WarmHelper = Helper,
            WarmRoot = Root,
            WarmStartTimeout = TimeSpan.FromSeconds(20),
        };
        return change is null ? options : change(options);
    }

    public DockerWarmPool Pool(Func<DockerOptions, DockerOptions>? change = null, TimeProvider? time = null)
    {
        Assert.True(File.Exists(Helper), $"{Helper} is missing: run scripts/build-images (it runs scripts/build-native)");
        var options = Options(change);
        var engine = Runtime;
        if (change is not null)
        {
            engine = new DockerEngine(options);
            _engines.Add(engine);
        }

        var pool = new DockerWarmPool(engine.Containers, options, Worker.QuotaWatch(), time: time);
        _pools.Add(pool);
        return pool;
    }

    public async Task<WarmSpec> ForkSpecAsync(string? owner = null) => new(
        owner ?? NewOwner(),
        await Runtime.Images.ResolveImageAsync(ForkImage, CancellationToken.None),
        WarmMode.Fork,
        [],
        new Dictionary<string, string>(),
        Resources,
        new Dictionary<string, string> { ["org.pipelines.test"] = "warm" })
    { Limits = Worker.LimitsFor(Resources, "function", "test") };

    public async Task<WarmSpec> HttpSpecAsync(params string[] extraArgs) => new(
        NewOwner(),
        await Runtime.Images.ResolveImageAsync(HttpImage, CancellationToken.None),
        WarmMode.Http,
        extraArgs.Length == 0 ? [] : ["/bin/http-example", "/model/words.tsv", .. extraArgs],
        new Dictionary<string, string>(),
        Resources,
        new Dictionary<string, string> { ["org.pipelines.test"] = "warm" })
    { Concurrency = 4, Limits = Worker.LimitsFor(Resources, "function", "test") };

    /// <summary>The worker settings the pool and the specs take their quotas from: the defaults.</summary>
    public static WorkerOptions Worker { get; } = new();

    private static Resources Resources { get; } = new(1, 256L * 1024 * 1024, TimeSpan.FromMinutes(1), 128);

    public static string NewOwner() => TestEnvironment.NewName("function:test-") + "@1";

    /// <summary>Whether Docker still knows the container.</summary>
    public async Task<bool> ExistsAsync(string id)
    {
        try
        {
            await Docker.Containers.InspectContainerAsync(id);
            return true;
        }
        catch (DockerContainerNotFoundException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var pool in _pools)
        {
            await pool.DisposeAsync();
        }

        foreach (var engine in _engines)
        {
            engine.Dispose();
        }

        Runtime.Dispose();
        Docker.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Nothing was made.
        }
    }
}
