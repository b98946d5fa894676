using Npgsql;
using Pipelines.Storage;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Functions;

/// <summary>
/// A `pipelines server` with the api and dashboard roles only, keys configured, warm containers
/// under a folder of its own, and async outputs in a bucket of its own; plus, on demand, one
/// separate `pipelines worker` process on the same PostgreSQL, which alone runs async invocations.
/// </summary>
public sealed class FunctionServerFixture : IAsyncLifetime
{
    private readonly string _schema = TestEnvironment.NewName("fsv_");
    private readonly SemaphoreSlim _workerLock = new(1, 1);
    private System.Diagnostics.Process? _worker;

    public ObjectStoreFactory Stores { get; } = new(TestEnvironment.S3);

    public TempFolder Temp { get; } = new();

    public string Bucket { get; private set; } = null!;

    public ServerProcess Server { get; private set; } = null!;

    public Dictionary<string, string?> Env { get; private set; } = null!;

    public string WarmRoot { get; } = Path.Combine("/tmp", "fw-" + Guid.NewGuid().ToString("N")[..8]);

    public async Task InitializeAsync()
    {
        Bucket = await TestEnvironment.NewBucketAsync(Stores.S3Client);
        Env = new()
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = _schema,
            ["PIPELINES_Hangfire__Schema"] = _schema + "_hangfire",
            ["PIPELINES_HOME"] = Temp.Combine("home"),
            ["PIPELINES_Worker__Concurrency"] = "2",
            ["PIPELINES_Docker__WarmRoot"] = WarmRoot,
            ["PIPELINES_Functions__Output"] = $"s3://{Bucket}/functions/",
            ["PIPELINES_Server__Bucket"] = Bucket,
            ["PIPELINES_Server__Keys__0__Key"] = ServerFixture.ReadKey,
            ["PIPELINES_Server__Keys__0__Role"] = "read",
            ["PIPELINES_Server__Keys__1__Key"] = ServerFixture.FullKey,
            ["PIPELINES_Server__Keys__1__Role"] = "full",
            ["PIPELINES_Server__Keys__1__Name"] = "operator",
        };
        Server = await ServerProcess.StartAsync(new Dictionary<string, string?>(Env) { ["PIPELINES_Server__Roles"] = "api,dashboard" });
    }

    public HttpClient Client() => Server.Client(ServerFixture.FullKey);

    /// <summary>Starts the one worker process (once); returns when it says it has started.</summary>
    public async Task StartWorkerAsync()
    {
        await _workerLock.WaitAsync();
        try
        {
            if (_worker is not null)
            {
                return;
            }

            _worker = CliRunner.Start(["worker", "--roles", "worker"], new Dictionary<string, string?>(Env) { ["PIPELINES_Docker__WarmRoot"] = WarmRoot + "w" });
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _worker.OutputDataReceived += (_, e) =>
            {
                if (e.Data?.StartsWith("worker ", StringComparison.Ordinal) == true)
                {
                    started.TrySetResult();
                }
            };
            _worker.BeginOutputReadLine();
            _worker.BeginErrorReadLine();
            await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            _workerLock.Release();
        }
    }

    public async Task DisposeAsync()
    {
        if (_worker is { HasExited: false })
        {
            using (var term = System.Diagnostics.Process.Start("kill", ["-TERM", _worker.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync();
            }

            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(40));
            try
            {
                await _worker.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _worker.Kill(entireProcessTree: true);
            }
        }

        _worker?.Dispose();
        await Server.DisposeAsync();
        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        Stores.Dispose();
        Temp.Dispose();
        _workerLock.Dispose();
    }
}
