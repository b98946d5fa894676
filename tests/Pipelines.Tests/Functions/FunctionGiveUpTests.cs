using Hangfire;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Pipelines.Functions;
using Pipelines.Hosting;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Functions;

/// <summary>
/// When Hangfire gives up on an async invocation's job, the invocation ends failed with the
/// reason, decided where it is for every job (EndWhenJobFails): a real host on PostgreSQL with a
/// Hangfire worker, and Functions:Output in an S3 endpoint that does not answer, an outage that
/// outlasts the retries.
/// </summary>
[Collection(InProcessHangfire.Name)]
[Integration]
public sealed class FunctionGiveUpTests : IAsyncLifetime
{
    private readonly string _schema = TestEnvironment.NewName("fgu_");
    private readonly TempFolder _temp = new();
    private IHost _host = null!;

    public async Task InitializeAsync()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Postgres"] = TestEnvironment.Postgres,
            ["Schema"] = _schema,
            ["Hangfire:Schema"] = _schema + "_hangfire",
            ["Hangfire:Retries"] = "1",
            ["Hangfire:RetryDelays:0"] = "1",
            ["S3:Endpoint"] = "http://127.0.0.1:9",
            ["S3:AccessKey"] = "nobody",
            ["S3:SecretKey"] = "nothing",
            ["Functions:Output"] = "s3://nowhere/functions/",
            ["Worker:Concurrency"] = "1",
            ["Worker:Scratch"] = _temp.Combine("scratch"),
            ["Docker:WarmRoot"] = Path.Combine("/tmp", "fg-" + Guid.NewGuid().ToString("N")[..8]),
        }).Build();
        _host = EngineHost.Build(config, worker: true);
        await _host.StartAsync();
    }

    [Fact]
    public async Task An_async_invocation_whose_outage_outlasts_the_retries_ends_failed_with_the_reason()
    {
        var functions = _host.Services.GetRequiredService<FunctionService>();
        var deployed = await functions.DeployAsync("name: later\nimage: pipelines-examples/warm-fork:1\ncommand: [\"wordcount\"]\n", "later.yaml", "test", CancellationToken.None);
        var id = FunctionService.NewId();
        var input = new FunctionInput(_temp.Combine("in"), [new InputPart("notes.txt", _temp.Combine("in", "notes.txt"), 3)], null, new string('0', 64), 3);
        await functions.Store.AddInvocationAsync(FunctionService.Record(id, deployed.Function, input, InvocationStatus.Queued, isAsync: true, "test", DateTimeOffset.UtcNow), CancellationToken.None);

        // As FunctionService.QueueAsync enqueues it, whose upload the dead endpoint would refuse first.
        _host.Services.GetRequiredService<IBackgroundJobClient>().Enqueue<Pipelines.Queue.InvocationJob>(j => j.RunAsync(id, null, CancellationToken.None));

        var ended = await EndedAsync(functions, id);
        Assert.Equal((InvocationStatus.Failed, (int?)503), (ended.Status, ended.HttpStatus));
        Assert.StartsWith("gave up after 2 deliveries: ", ended.Error, StringComparison.Ordinal);
        Assert.Contains("cannot reach the S3 endpoint http://127.0.0.1:9", ended.Error, StringComparison.Ordinal);
    }

    /// <summary>The invocation once it has ended, looked at as a client of the API would (the store has no event to await).</summary>
    private static async Task<InvocationRecord> EndedAsync(FunctionService functions, string id)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        while (true)
        {
            var record = await functions.Store.GetInvocationAsync(id, deadline.Token);
            if (record is { Status: not (InvocationStatus.Queued or InvocationStatus.Running) })
            {
                return record;
            }

            await Task.Delay(200, deadline.Token);
        }
    }

    public async Task DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        _temp.Dispose();
    }
}
