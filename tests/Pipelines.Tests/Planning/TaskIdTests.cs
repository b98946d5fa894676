using Pipelines.Model;
using Pipelines.Planning;
using static Pipelines.Tests.Planning.PlanFixtures;

namespace Pipelines.Tests.Planning;

/// <summary>A task id names the task's work: equal ids mean equal work, so a later run may reuse results.</summary>
[Unit]
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
    public void TaskId_ignores_retries_which_do_not_change_results()
    {
        var plain = Ids(Flow());
        var retried = Ids(Flow(step: "    retries: 3"));

        Assert.Equal(plain, retried);
    }

    // Identity format 2 made resources part of the id, so that explain can name a resources
    // change as the reason a task ran (format 1 left them out, and this test said the opposite).
    [Theory]
    [InlineData("resources: { cpus: 4 }")]
    [InlineData("resources: { memory: 8Gi }")]
    [InlineData("resources: { timeout: 2h }")]
    public void TaskId_changes_when_a_resource_changes(string resources)
    {
        Assert.NotEqual(Ids(Flow())[0], Ids(Flow(step: "    " + resources))[0]);
    }

    [Fact]
    public void TaskId_is_the_digest_of_the_identitys_canonical_form()
    {
        var workflow = Flow(step: "    env: { LC_ALL: C }");
        var identity = Planner.Identity(workflow, Digests, [File("a.fastq")], new Dictionary<string, string>());

        Assert.Equal(Ids(workflow, [File("a.fastq")])[0], identity.TaskId);
        Assert.Equal(TaskIdentity.CurrentFormat, identity.Format);
        Assert.StartsWith("pipelines-task-v2\n", identity.CanonicalForm(), StringComparison.Ordinal);
        var step = Assert.Single(identity.Steps);
        Assert.Equal(("stats", Image, "sha256:1111"), (step.Name, step.Image, step.ImageDigest));
        Assert.Equal(["stats", "/in/a.fastq"], step.Command);
        Assert.Equal("C", step.Env["LC_ALL"]);
        Assert.Equal("536870912", step.Resources["memory"]);
        Assert.Equal([new IdentityInput("a.fastq", "etag-a.fastq")], identity.Inputs);
    }

    [Fact]
    public void TaskId_depends_on_captures_only_through_what_they_expand_into()
    {
        var listing = new[] { File("a.fastq") };
        var s1 = new Dictionary<string, string> { ["sample"] = "s1" };
        var s2 = new Dictionary<string, string> { ["sample"] = "s2" };
        var unused = SheetFlow("""["stats", "{inputs}"]""");
        var used = SheetFlow();

        Assert.Equal(Planner.TaskId(unused, Digests, listing, s1), Planner.TaskId(unused, Digests, listing, s2));
        Assert.NotEqual(Planner.TaskId(used, Digests, listing, s1), Planner.TaskId(used, Digests, listing, s2));
        Assert.Equal("s1", Planner.Identity(unused, Digests, listing, s1).Captures["sample"]);
    }

    [Fact]
    public void TaskId_ignores_the_images_name_when_its_digest_is_the_same()
    {
        var workflow = Flow();
        var retagged = workflow with { Steps = [workflow.Steps[0] with { Image = "tools/stats:latest" }] };

        Assert.Equal(Ids(workflow), Ids(retagged, digests: new Dictionary<string, string> { ["tools/stats:latest"] = "sha256:1111" }));
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
