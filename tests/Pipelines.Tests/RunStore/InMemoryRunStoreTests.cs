using Pipelines.Planning;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.RunStore;

/// <summary>
/// What only the embedded store does: provenance rows leave memory for a spill file that no one
/// else can see and that nothing leaves behind; a task's release time goes when the task ends.
/// </summary>
[Unit]
public sealed class InMemoryRunStoreTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Provenance_rows_read_back_from_a_spill_file_that_is_never_left_in_its_folder()
    {
        using var folder = new TempFolder();
        using var store = new InMemoryRunStore(folder.Path);
        const int Count = 300;
        await store.CreateRunAsync(Run("r1"), Tasks("r1", Count), None);

        // Committed out of order, two attempts each, from several callers at once.
        await Parallel.ForEachAsync(Enumerable.Range(0, Count).Reverse(), async (i, ct) =>
            await store.CommitTaskAsync("r1", i, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [Row(i, 2), Row(i, 1)], ct));

        Assert.Empty(Directory.EnumerateFileSystemEntries(folder.Path));
        var rows = await store.GetProvenanceAsync("r1", None);
        Assert.Equal(Enumerable.Range(0, Count).SelectMany(i => new[] { $"{i} 1 out/{i}/1", $"{i} 2 out/{i}/2" }), rows.Select(r => $"{r.TaskIndex} {r.Attempt} {r.Outputs[0].Key}"));
        Assert.Equal(["out/7/1", "out/7/2"], (await store.GetProvenanceAsync("r1", [7], None)).Select(r => r.Outputs[0].Key));
    }

    [Fact]
    public async Task A_disposed_store_refuses_a_commit_rather_than_losing_its_rows()
    {
        using var folder = new TempFolder();
        var store = new InMemoryRunStore(folder.Path);
        await store.CreateRunAsync(Run("r1"), Tasks("r1", 2), None);
        await store.CommitTaskAsync("r1", 0, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [Row(0, 1)], None);

        store.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => store.CommitTaskAsync("r1", 1, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [Row(1, 1)], None));
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder.Path));
    }

    [Fact]
    public async Task A_tasks_release_time_goes_when_the_task_ends_so_the_store_holds_only_those_in_flight()
    {
        using var store = new InMemoryRunStore();
        const int Count = 1000;
        await store.CreateRunAsync(Run("r1"), Tasks("r1", Count), None);
        await store.ReleaseTasksAsync(Run("r1").Tenant, Count, Now, None);
        for (var i = 0; i < Count; i++)
        {
            await store.ClaimTaskAsync("r1", i, "w", Now, Now.AddMinutes(1), None);
        }

        var running = store.ReleaseTimesHeld("r1");
        for (var i = 0; i < Count - 3; i++)
        {
            await store.CommitTaskAsync("r1", i, new TaskOutcome(i % 2 == 0 ? TaskState.Succeeded : TaskState.Failed, 0, null, Now), [Row(i, 1)], None);
        }

        Assert.Equal(Count, running);
        Assert.Equal(3, store.ReleaseTimesHeld("r1"));
        Assert.Equal(new TenantLoad(Run("r1").Tenant, 0, 3), (await store.TenantLoadsAsync(None)).Single());
    }

    private static RunRecord Run(string id) =>
        new(id, "wf", "version: 1", "{}", "/tmp/out/" + id + "/", RunState.Running, 0, 0, Now, null, null, null);

    private static List<TaskRecord> Tasks(string id, int count) => Enumerable.Range(0, count).Select(i => new TaskRecord(
        id, i, $"id{i:D4}", TaskState.Queued, [new InputFile($"in/f{i}.fastq", 10 + i, "abc")],
        new Dictionary<string, string>(), 0, null, null, null, null, null)).ToList();

    private static ProvenanceRow Row(int index, int attempt) => new()
    {
        TaskId = $"id{index:D4}",
        TaskIndex = index,
        Attempt = attempt,
        Step = "stats",
        Status = "succeeded",
        Command = ["fastq-stats", $"in/f{index}.fastq"],
        Inputs = [new FileRef { Key = $"in/f{index}.fastq", Size = 10 + index, Sha256 = "abc" }],
        Outputs = [new FileRef { Key = $"out/{index}/{attempt}", Size = 1, Sha256 = "def" }],
        StartedAt = Now.UtcDateTime,
        FinishedAt = Now.UtcDateTime,
    };
}
