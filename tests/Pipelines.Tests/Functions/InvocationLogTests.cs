using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Functions;
using Pipelines.Tenancy;

namespace Pipelines.Tests.Functions;

/// <summary>
/// The invocation log writes synchronous invocations' records in batches off the request path:
/// what a process has handed over it reads back at once, and a stop writes what is still queued.
/// </summary>
[Unit]
public sealed class InvocationLogTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Records_handed_over_at_once_by_many_callers_are_all_read_back_by_the_next_read()
    {
        var store = new InMemoryFunctionStore();
        var deployed = await DeployAsync(store);
        await using var log = new InvocationLog(store, NullLogger<InvocationLog>.Instance);

        await Task.WhenAll(Enumerable.Range(0, 500).Select(i => Task.Run(() => log.RecordAsync(Ended(deployed, "i" + i), CancellationToken.None).AsTask())));
        var stats = await log.StatsAsync("echo", null, CancellationToken.None);

        Assert.Equal(500L, stats.Single().Requests);
        Assert.Equal(50, (await log.ListInvocationsAsync("echo", 50, CancellationToken.None)).Count);
        Assert.Equal(InvocationStatus.Succeeded, (await log.GetInvocationAsync("i499", CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task A_stop_writes_the_records_still_queued_and_a_record_after_it_is_written_directly()
    {
        var store = new InMemoryFunctionStore();
        var deployed = await DeployAsync(store);
        var log = new InvocationLog(store, NullLogger<InvocationLog>.Instance);
        for (var i = 0; i < 200; i++)
        {
            await log.RecordAsync(Ended(deployed, "i" + i), CancellationToken.None);
        }

        await log.StopAsync(CancellationToken.None);
        await log.RecordAsync(Ended(deployed, "late"), CancellationToken.None);

        Assert.Equal(201L, (await store.StatsAsync("echo", null, CancellationToken.None)).Single().Requests);
        await log.DisposeAsync();
    }

    [Fact]
    public async Task A_deleted_function_takes_its_queued_records_with_it()
    {
        var store = new InMemoryFunctionStore();
        var deployed = await DeployAsync(store);
        await using var log = new InvocationLog(store, NullLogger<InvocationLog>.Instance);
        await log.RecordAsync(Ended(deployed, "i1"), CancellationToken.None);

        Assert.Equal([1], await log.DeleteAsync("echo", CancellationToken.None));
        await DeployAsync(store);

        Assert.Null(await log.GetInvocationAsync("i1", CancellationToken.None));
    }

    [Fact]
    public async Task A_tenants_view_of_the_log_reads_its_own_records_handed_over_before_and_not_another_tenants()
    {
        var store = new InMemoryFunctionStore();
        await using var log = new InvocationLog(store, NullLogger<InvocationLog>.Instance);
        var labA = log.For(TenantScope.Of(TenantId.Parse("lab-a", "test")));
        var labB = log.For(TenantScope.Of(TenantId.Parse("lab-b", "test")));
        var deployed = (await labA.DeployAsync(FunctionParser.Parse("name: echo\nimage: busybox:1\ncommand: [cat, \"{input}\"]\n", "f.yaml"), "y", "sha256:e", "e", "tester", Now, CancellationToken.None)).Function;

        await log.RecordAsync(Ended(deployed, "i1"), CancellationToken.None);

        Assert.Same(log, log.For(TenantScope.All));
        Assert.Equal(InvocationStatus.Succeeded, (await labA.GetInvocationAsync("i1", CancellationToken.None))!.Status);
        Assert.Null(await labB.GetInvocationAsync("i1", CancellationToken.None));
        Assert.Empty(await labB.StatsAsync(null, null, CancellationToken.None));
    }

    private static async Task<FunctionVersion> DeployAsync(InMemoryFunctionStore store) =>
        (await store.DeployAsync(FunctionParser.Parse("name: echo\nimage: busybox:1\ncommand: [cat, \"{input}\"]\n", "f.yaml"), "y", "sha256:e", "e", "tester", Now, CancellationToken.None)).Function;

    private static EndedInvocation Ended(FunctionVersion function, string id) => new(
        FunctionService.Record(id, function, new FunctionInput("/in", [], null, "in-sha", 7), InvocationStatus.Running, isAsync: false, "tester", Now),
        new InvocationEnd(InvocationStatus.Succeeded, 200, "ab", 2, "out.txt", "text/plain", 1.5, "c0ffee", null),
        Now.AddSeconds(1));
}
