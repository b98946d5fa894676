using System.Text;
using Pipelines.Explain;
using Pipelines.Tests.Worker.Parts;

namespace Pipelines.Tests.Explain;

/// <summary>
/// Why a task ran, as the task shell records it when it consults the cache, and as explain reads
/// it: one rule per changed component, a cached task, a damaged cache, no earlier run. Runs the
/// real shell on a store in memory and a scripted runtime (<see cref="WorkerRig"/>); the same
/// rules run end to end in <see cref="ExplainEndToEndTests"/>.
/// </summary>
[Unit]
public sealed class ExplainRuleTests
{
    private const string Step = """
          - name: count
            image: scripted:1
            command: ["count", "{inputs}"]
            env: { LC_ALL: C }
            resources: { memory: 256Mi }
            outputs: ["*.tsv"]
            reuse: false
        """;

    private static WorkerRig Rig() => new(async (spec, outDir, ct) =>
    {
        await File.WriteAllTextAsync(Path.Combine(outDir, "r.tsv"), string.Join(",", spec.Command) + "\n", ct);
        return ScriptedRuntime.Exit(0);
    });

    private static async Task<TaskExplanation> ExplainAsync(WorkerRig rig, string runId, string task = "0")
    {
        var rows = await rig.RowsAsync(runId);
        var tasks = await rig.Runs.GetTasksAsync(runId, CancellationToken.None);
        return Explainer.Task(runId, rows, tasks, task) ?? throw new InvalidOperationException($"no task {task}");
    }

    /// <summary>Runs <paramref name="before"/> then <paramref name="now"/> over the same output root and explains task 0 of the second.</summary>
    private static async Task<(WorkerRig Rig, TaskExplanation Explained)> TwoRunsAsync(
        string before, string now, (string, string)[]? filesBefore = null, (string, string)[]? filesNow = null, string input = "", string? digestBefore = null, string? digestNow = null, Action<WorkerRig>? between = null)
    {
        var rig = Rig();
        var first = await rig.SubmitAsync(before, filesBefore ?? [("a.txt", "x")], runId: "run-1", input: input, digest: digestBefore);
        await rig.DeliverAllAsync(first.RunId);
        between?.Invoke(rig);
        var second = await rig.SubmitAsync(now, filesNow ?? filesBefore ?? [("a.txt", "x")], runId: "run-2", input: input, digest: digestNow);
        await rig.DeliverAllAsync(second.RunId);
        return (rig, await ExplainAsync(rig, second.RunId));
    }

    private static IdentityChange Only(TaskExplanation explained)
    {
        Assert.Null(explained.CachedFrom);
        var why = Assert.IsType<RanBecause>(explained.RanBecause);
        Assert.Equal((RanBecause.Changed, "run-1"), (why.Reason, why.EarlierRun));
        return Assert.Single(why.Changes!);
    }

    [Fact]
    public async Task The_first_run_in_an_output_location_ran_because_there_was_no_earlier_run()
    {
        using var rig = Rig();
        var run = await rig.SubmitAsync(Step, [("a.txt", "x")]);
        await rig.DeliverAllAsync(run.RunId);

        var explained = await ExplainAsync(rig, run.RunId);

        Assert.Equal(("succeeded", null), (explained.State, explained.CachedFrom));
        Assert.Equal(RanBecause.NoEarlierRun, explained.RanBecause!.Reason);
        Assert.Contains("  ran because no earlier run in this output location for this unit", explained.Lines());
        Assert.Single(rig.Objects.Keys, k => k.StartsWith("out/.cache/units/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_unchanged_task_is_explained_as_taken_from_the_cache_of_the_earlier_run()
    {
        var (rig, explained) = await TwoRunsAsync(Step, Step);
        using var _ = rig;

        Assert.Equal(("cached", "run-1", null), (explained.State, explained.CachedFrom, explained.RanBecause));
        Assert.Contains("taken from the cache: run run-1", string.Join('\n', explained.Lines()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_changed_input_is_named_with_its_index_key_and_both_tags()
    {
        var (rig, explained) = await TwoRunsAsync(Step, Step, [("a.txt", "x")], [("a.txt", "y")]);
        using var _ = rig;

        var change = Only(explained);
        Assert.Equal(("inputs[0]", "a.txt", "input content"), (change.Component, change.Key, change.Kind));
        Assert.Equal(Md5("x"), change.Before);
        Assert.Equal(Md5("y"), change.Now);
        Assert.Equal($"inputs[0] (a.txt) md5 {Md5("x")[..12]}… → {Md5("y")[..12]}…", change.Describe());
    }

    [Fact]
    public async Task An_input_added_to_a_unit_is_named_with_the_argument_it_added()
    {
        const string group = "group_by: '(?<sample>[a-z]+)_[0-9]\\.txt$'";
        var (rig, explained) = await TwoRunsAsync(Step, Step, [("s_1.txt", "x")], [("s_1.txt", "x"), ("s_2.txt", "y")], input: group);
        using var _ = rig;

        var changes = explained.RanBecause!.Changes!;
        Assert.Equal(RanBecause.Changed, explained.RanBecause.Reason);
        Assert.Equal(
            [("inputs[1]", null, "s_2.txt", "input added"), ("steps[0].command[2]", null, null, "steps[0].command")],
            changes.Select(c => (c.Component, c.Before, c.Key, c.Kind)));
        Assert.Equal("/in/s_2.txt", changes[1].Now);
    }

    [Fact]
    public async Task An_input_removed_from_a_unit_is_named_by_its_earlier_index()
    {
        const string group = "group_by: '(?<sample>[a-z]+)_[0-9]\\.txt$'";
        var (rig, explained) = await TwoRunsAsync(Step, Step, [("s_1.txt", "x"), ("s_2.txt", "y")], [("s_1.txt", "x")], input: group, between: r => r.Objects.Remove("in/s_2.txt"));
        using var _ = rig;

        var removed = explained.RanBecause!.Changes!.First();
        Assert.Equal(("inputs[1]", "s_2.txt", "input removed"), (removed.Component, removed.Key, removed.Kind));
        Assert.Equal("inputs[1] (s_2.txt) removed", removed.Describe());
    }

    [Fact]
    public async Task A_new_image_digest_is_named_with_the_image_and_both_digests()
    {
        var (rig, explained) = await TwoRunsAsync(Step, Step, digestBefore: "sha256:" + new string('1', 64), digestNow: "sha256:" + new string('2', 64));
        using var _ = rig;

        var change = Only(explained);
        Assert.Equal("steps[0].image_digest", change.Component);
        Assert.Equal("scripted:1@sha256:" + new string('1', 64), change.Before);
        Assert.Equal("scripted:1@sha256:" + new string('2', 64), change.Now);
    }

    [Fact]
    public async Task A_changed_command_argument_is_named_by_its_position()
    {
        var (rig, explained) = await TwoRunsAsync(Step, Step.Replace("\"count\", \"{inputs}\"", "\"count\", \"--fast\"", StringComparison.Ordinal));
        using var _ = rig;

        var change = Only(explained);
        Assert.Equal(("steps[0].command[1]", "/in/a.txt", "--fast"), (change.Component, change.Before, change.Now));
        Assert.Equal("steps[0].command[1]: '/in/a.txt' → '--fast'", change.Describe());
    }

    [Fact]
    public async Task A_changed_env_value_is_named_by_its_variable()
    {
        var (rig, explained) = await TwoRunsAsync(Step, Step.Replace("LC_ALL: C", "LC_ALL: POSIX", StringComparison.Ordinal));
        using var _ = rig;

        var change = Only(explained);
        Assert.Equal(("steps[0].env.LC_ALL", "C", "POSIX"), (change.Component, change.Before, change.Now));
    }

    [Fact]
    public async Task A_changed_resource_is_named_by_its_limit()
    {
        var (rig, explained) = await TwoRunsAsync(Step, Step.Replace("memory: 256Mi", "memory: 1Gi", StringComparison.Ordinal));
        using var _ = rig;

        var change = Only(explained);
        Assert.Equal(("steps[0].resources.memory", "268435456", "1073741824"), (change.Component, change.Before, change.Now));
    }

    [Fact]
    public async Task A_cached_output_that_is_missing_is_named_and_the_task_runs()
    {
        var (rig, explained) = await TwoRunsAsync(Step, Step, between: r => r.Objects.Remove(r.Objects.Keys.Single(k => k.StartsWith("out/run-1/tasks/", StringComparison.Ordinal) && k.EndsWith(".tsv", StringComparison.Ordinal))));
        using var _ = rig;

        Assert.Equal("succeeded", explained.State);
        var why = explained.RanBecause!;
        Assert.Equal((RanBecause.OutputMissing, "run-1"), (why.Reason, why.EarlierRun));
        Assert.Equal($"tasks/{explained.TaskId}/count/r.tsv", why.Detail);
        Assert.Equal(2, rig.Runtime.Runs);
    }

    [Fact]
    public async Task A_cached_output_whose_bytes_changed_is_named_and_the_task_runs()
    {
        var (rig, explained) = await TwoRunsAsync(Step, Step, between: r => r.Objects.Set(r.Objects.Keys.Single(k => k.StartsWith("out/run-1/tasks/", StringComparison.Ordinal) && k.EndsWith(".tsv", StringComparison.Ordinal)), Encoding.UTF8.GetBytes("tampered\n")));
        using var _ = rig;

        var why = explained.RanBecause!;
        Assert.Equal((RanBecause.OutputMismatch, $"tasks/{explained.TaskId}/count/r.tsv"), (why.Reason, why.Detail));
        Assert.Contains("no longer matches its sha256", why.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_damaged_cache_entry_is_named_and_the_task_runs()
    {
        var (rig, explained) = await TwoRunsAsync(Step, Step, between: r => r.Objects.Set(r.Objects.Keys.Single(k => k.StartsWith("out/.cache/", StringComparison.Ordinal) && !k.Contains("/units/", StringComparison.Ordinal)), Encoding.UTF8.GetBytes("{ not json")));
        using var _ = rig;

        Assert.Equal(RanBecause.EntryDamaged, explained.RanBecause!.Reason);
        Assert.Equal(2, rig.Runtime.Runs);
    }

    [Fact]
    public async Task The_run_in_sum_counts_cached_tasks_and_each_reason_once_per_task()
    {
        using var rig = Rig();
        var first = await rig.SubmitAsync(Step, [("a.txt", "x"), ("b.txt", "y"), ("c.txt", "z")], runId: "run-1");
        await rig.DeliverAllAsync(first.RunId);
        var second = await rig.SubmitAsync(Step, [("b.txt", "changed"), ("d.txt", "new")], runId: "run-2");
        await rig.DeliverAllAsync(second.RunId);

        var sum = Explainer.Run(second.RunId, await rig.RowsAsync(second.RunId), await rig.Runs.GetTasksAsync(second.RunId, CancellationToken.None));

        // a.txt and c.txt are still listed (the store keeps them): cached; b.txt changed; d.txt is new.
        Assert.Equal((4, 2, 2, 0), (sum.Tasks, sum.Cached, sum.Ran, sum.NotRun));
        Assert.Equal([("input content", 1), ("no earlier run", 1)], sum.Reasons.Select(r => (r.Reason, r.Count)));
        Assert.Equal("run run-2: 4 task(s): 2 cached, 2 ran", sum.Lines()[0]);
    }

    [Fact]
    public async Task The_nearest_earlier_task_is_the_units_latest_even_when_it_was_taken_from_the_cache()
    {
        using var rig = Rig();
        foreach (var (runId, content) in new[] { ("run-1", "x"), ("run-2", "y"), ("run-3", "x"), ("run-4", "z") })
        {
            var run = await rig.SubmitAsync(Step, [("a.txt", content)], runId: runId);
            await rig.DeliverAllAsync(run.RunId);
        }

        // run-3 took run-1's result from the cache, so run-4's nearest earlier task is run-1's (content x).
        Assert.Equal("run-1", (await ExplainAsync(rig, "run-3")).CachedFrom);
        var change = Only(await ExplainAsync(rig, "run-4"));
        Assert.Equal((Md5("x"), Md5("z")), (change.Before, change.Now));
    }

    [Fact]
    public async Task A_task_is_found_by_its_task_id_as_well_as_its_index()
    {
        using var rig = Rig();
        var run = await rig.SubmitAsync(Step, [("a.txt", "x"), ("b.txt", "y")]);
        await rig.DeliverAllAsync(run.RunId);
        var task = await rig.TaskAsync(run.RunId, 1);

        var byId = Explainer.Task(run.RunId, await rig.RowsAsync(run.RunId), await rig.Runs.GetTasksAsync(run.RunId, CancellationToken.None), task.TaskId);

        Assert.Equal(1, byId!.TaskIndex);
        Assert.Null(Explainer.Task(run.RunId, await rig.RowsAsync(run.RunId), null, "7"));
    }

    private static string Md5(string content) => Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(Encoding.UTF8.GetBytes(content)));
}
