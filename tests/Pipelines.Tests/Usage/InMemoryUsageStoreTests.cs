using Pipelines.RunStore;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;
using Pipelines.Usage;

namespace Pipelines.Tests.Usage;

/// <summary>
/// What only the embedded ledger does: records leave memory for a spill file that no one else can
/// see and that nothing leaves behind, and every figure a reader takes comes back from it exact.
/// </summary>
[Unit]
public sealed class InMemoryUsageStoreTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 9, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly PriceSheet Sheet = new() { CpuSecond = 0.00002, GbSecond = 0.0000166667, HarvestedDiscount = 0.5 };

    [Fact]
    public async Task A_one_shot_runs_records_read_back_exact_from_a_spill_file_that_is_never_left_in_its_folder()
    {
        using var folder = new TempFolder();
        using var usage = new InMemoryUsageStore(folder.Path);
        const int Count = 500;
        var written = Enumerable.Range(0, Count).SelectMany(i => i % 50 == 0
            ? new[] { Record("r1", i, 1, UsageOutcomes.Vacated, 0.1 * i), Record("r1", i, 2, UsageOutcomes.Succeeded, 1.0 / (i + 3)) }
            : [Record("r1", i, 1, i % 7 == 0 ? UsageOutcomes.Failed : UsageOutcomes.Succeeded, 1.0 / (i + 3))]).ToList();

        // Written out of order, from several callers at once, each twice (the second changes nothing).
        await Parallel.ForEachAsync(Enumerable.Reverse(written).Concat(written), async (r, ct) => await usage.RecordAsync(r, ct));
        await usage.RecordAsync(Invocation("inv-1"), None);

        Assert.Empty(Directory.EnumerateFileSystemEntries(folder.Path));
        var read = await usage.ForRunAsync("r1", None);
        Assert.Equal(written, read);
        Assert.Equal(RunUsage.Of(written, Sheet), RunUsage.Of(read, Sheet));
        Assert.Equal(RunUsage.Of(written, Sheet).Line(), RunUsage.Of(await usage.AggregateAsync(new UsageQuery(RunId: "r1"), None), Sheet).Line());
        Assert.Equal([.. written.Append(Invocation("inv-1")).OrderBy(r => r.EndedAt).ThenBy(r => r.Id, StringComparer.Ordinal)], await usage.RecordsAsync(new UsageQuery(), None).ToListAsync());
        Assert.Equal((2, true), usage.DeliveriesOf("r1", 50, Now.AddSeconds(50)));
        Assert.Equal((1, false), usage.DeliveriesOf("r1", 51, Now));
        Assert.Equal((0, false), usage.DeliveriesOf("r2", 0, Now));
    }

    [Fact]
    public async Task A_disposed_ledger_refuses_a_record_and_the_run_store_leaves_the_task_open()
    {
        using var folder = new TempFolder();
        var usage = new InMemoryUsageStore(folder.Path);
        using var runs = new InMemoryRunStore(folder.Path, usage);
        var run = new RunRecord("r1", "wf", "version: 1", "{}", "/tmp/out/r1/", RunState.Running, 0, 0, Now, null, null, null);
        await runs.CreateRunAsync(run, [new TaskRecord("r1", 0, "id0", TaskState.Queued, [], new Dictionary<string, string>(), 0, null, null, null, null, null)], None);
        await runs.ClaimTaskAsync("r1", 0, "w", Now, Now.AddMinutes(1), None);

        usage.Dispose();

        var outcome = new TaskOutcome(TaskState.Succeeded, 0, null, Now) { Usage = Record("r1", 0, 1, UsageOutcomes.Succeeded, 1) };
        await Assert.ThrowsAsync<ObjectDisposedException>(() => runs.CommitTaskAsync("r1", 0, outcome, [], None));
        Assert.Equal(TaskState.Running, (await runs.GetTaskAsync("r1", 0, None))!.State);
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder.Path));
    }

    private static UsageRecord Record(string run, int index, int delivery, string outcome, double cpu) =>
        new(UsageRecord.TaskId(run, index, delivery), TenantId.Default, UsageKinds.Task, Now.AddSeconds(index), Now.AddSeconds(index + delivery), outcome)
        {
            RunId = run,
            TaskIndex = index,
            Delivery = delivery,
            Worker = "w",
            WallSeconds = UsageRecord.Seconds(1.0 / (index + 7)),
            CpuSeconds = index % 11 == 0 ? null : cpu,
            PeakMemoryBytes = 1000 + index,
            ReservedMemoryBytes = 1L << 30,
            GbSeconds = cpu / 3,
            BytesIn = index,
            BytesOut = 2 * index,
            Harvested = index % 3 == 0,
            Reason = outcome == UsageOutcomes.Vacated ? "vacated: the machine's owner needed it back" : null,
        };

    private static UsageRecord Invocation(string id) =>
        new(id, TenantId.Default, UsageKinds.Invocation, Now, Now.AddSeconds(1), UsageOutcomes.Succeeded) { Function = "f", Version = 1, Route = "stable", WallSeconds = 0.25 };
}
