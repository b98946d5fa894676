using Pipelines.Model;
using Pipelines.Planning;
using static Pipelines.Tests.Planning.PlanFixtures;

namespace Pipelines.Tests.Planning;

/// <summary>A task id names the task's work: equal ids mean equal work, so a later run may reuse results.</summary>
public sealed class TaskIdTests
{
    private static readonly IReadOnlyList<InputFile> Listing = Files("a.fastq", "b.fastq");

    private static string[] Ids(Workflow workflow, IReadOnlyList<InputFile>? listing = null, IReadOnlyDictionary<string, string>? digests = null) =>
        Planner.Plan(workflow, listing ?? Listing, null, digests ?? Digests).Tasks.Select(t => t.TaskId).ToArray();

    [Fact]
    public void TaskId_is_24_lower_case_hex_digits()
    {
        Assert.All(Ids(Flow()), id => Assert.Matches("^[0-9a-f]{24}$", id));
    }

    [Fact]
    public void TaskId_is_the_same_for_the_same_work()
    {
        var first = Ids(Flow());
        var again = Ids(Flow(), Files("b.fastq", "a.fastq", "c.txt").Where(f => f.Key != "c.txt").ToList());

        Assert.Equal(first, again);
    }

    [Fact]
    public void TaskId_differs_between_the_tasks_of_a_plan()
    {
        var ids = Ids(Flow());

        Assert.NotEqual(ids[0], ids[1]);
    }

    [Fact]
    public void TaskId_changes_when_an_inputs_hash_changes_and_only_for_its_task()
    {
        var before = Ids(Flow());
        var after = Ids(Flow(), [File("a.fastq"), File("b.fastq", hash: "etag-changed")]);

        Assert.Equal(before[0], after[0]);
        Assert.NotEqual(before[1], after[1]);
    }

    [Fact]
    public void TaskId_changes_when_an_input_is_renamed()
    {
        var before = Ids(Flow(), [File("a.fastq", "h")]);
        var after = Ids(Flow(), [File("renamed.fastq", "h")]);

        Assert.NotEqual(before, after);
    }

    [Fact]
    public void TaskId_ignores_the_size_that_the_hash_already_covers()
    {
        var before = Ids(Flow(), [new InputFile("a.fastq", 100, "h")]);
        var after = Ids(Flow(), [new InputFile("a.fastq", 200, "h")]);

        Assert.Equal(before, after);
    }

    [Fact]
    public void TaskId_changes_when_the_image_digest_changes()
    {
        var before = Ids(Flow());
        var after = Ids(Flow(), digests: new Dictionary<string, string> { [Image] = "sha256:2222" });

        Assert.NotEqual(before[0], after[0]);
        Assert.NotEqual(before[1], after[1]);
    }

    [Theory]
    [InlineData("""["stats", "--fast", "{inputs}"]""")]
    [InlineData("""["{inputs}", "stats"]""")]
    [InlineData("""["stats2", "{inputs}"]""")]
    public void TaskId_changes_when_the_command_changes(string command)
    {
        Assert.NotEqual(Ids(Flow())[0], Ids(Flow(command: command))[0]);
    }

    [Fact]
    public void TaskId_changes_when_env_or_kept_outputs_change()
    {
        var plain = Ids(Flow())[0];
        var withEnv = Ids(Flow(step: "    env: { LC_ALL: C }"))[0];
        var otherEnv = Ids(Flow(step: "    env: { LC_ALL: POSIX }"))[0];
        var keepTsv = Ids(Flow(step: """    outputs: ["*.tsv"]"""))[0];

        Assert.Equal(4, new[] { plain, withEnv, otherEnv, keepTsv }.Distinct().Count());
    }

    [Fact]
    public void TaskId_ignores_resources_and_retries_which_do_not_change_results()
    {
        var plain = Ids(Flow());
        var bigger = Ids(Flow(step: """
                resources: { cpus: 4, memory: 8Gi, timeout: 2h }
                retries: 3
            """));

        Assert.Equal(plain, bigger);
    }

    [Fact]
    public void TaskId_does_not_depend_on_the_task_placeholder()
    {
        var first = Ids(Flow(command: """["stats", "--id", "{task}", "{inputs}"]"""));
        var again = Ids(Flow(command: """["stats", "--id", "{task}", "{inputs}"]"""));

        Assert.Equal(first, again);
        Assert.NotEqual(Ids(Flow())[0], first[0]);
    }

    [Fact]
    public void TaskId_changes_with_the_step_name()
    {
        var workflow = Flow();
        var renamed = workflow with { Steps = [workflow.Steps[0] with { Name = "other" }] };

        Assert.NotEqual(Ids(Flow())[0], Ids(renamed)[0]);
    }
}
