using System.Text.RegularExpressions;
using Pipelines.Model;
using Pipelines.Runs;
using static Pipelines.Tests.Planning.PlanFixtures;

namespace Pipelines.Tests.Planning;

[Unit]
public sealed class PlannerGroupByTests
{
    private const string Pattern = @"(?<sample>s\d+)_R[12]\.fastq$";

    private static Workflow Grouped() => Flow($"  group_by: '{Pattern}'", command: """["stats", "--sample", "{sample}", "{inputs}"]""");

    [Fact]
    public void Planner_uses_the_compiled_group_by_of_the_workflow()
    {
        // Only a regex compiled with IgnoreCase matches S1: a planner that built its own from the text would group nothing.
        var workflow = Grouped();
        var ignoringCase = GroupByPattern.Compile(Pattern, GroupByPattern.MatchTimeout, RegexOptions.IgnoreCase);
        workflow = workflow with { Input = workflow.Input with { GroupByPattern = ignoringCase } };

        var plan = Plan(workflow, Files("S1_R1.fastq", "S1_R2.fastq"));

        Assert.Equal([["S1_R1.fastq", "S1_R2.fastq"]], Keys(plan));
        Assert.Equal("S1", Assert.Single(plan.Tasks).Captures["sample"]);
    }

    [Fact]
    public void Planner_refuses_a_group_by_that_times_out_naming_the_key_and_the_field()
    {
        var workflow = Flow("  group_by: '^(?<sample>(a|aa)+)$'", command: """["stats", "{inputs}"]""");
        var slowKey = new string('a', 64) + "!";
        var quick = GroupByPattern.Compile(workflow.Input.GroupBy!, TimeSpan.FromMilliseconds(50));
        workflow = workflow with { Input = workflow.Input with { GroupByPattern = quick } };

        var e = Assert.Throws<WorkflowInvalidException>(() => Plan(workflow, Files("aa", slowKey)));

        var p = Assert.Single(e.Problems);
        Assert.Equal("input.group_by", p.Path);
        Assert.Contains($"to match the key '{slowKey}'", p.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_workflow_read_back_from_the_run_json_keeps_the_pattern_text_and_plans_the_same()
    {
        var workflow = Grouped();
        var listing = Files("s1_R1.fastq", "s1_R2.fastq", "s2_R1.fastq", "notes.txt");

        var json = new RunDefinition(workflow, Digests).ToJson();
        var readBack = RunDefinition.FromJson(json).Workflow;

        Assert.Contains("\"GroupBy\":", json, StringComparison.Ordinal);
        Assert.DoesNotContain("GroupByPattern", json, StringComparison.Ordinal);
        Assert.Equal(Pattern, readBack.Input.GroupByPattern!.Text);
        Assert.Equal(
            Plan(workflow, listing).Tasks.Select(t => t.TaskId),
            Plan(readBack, listing).Tasks.Select(t => t.TaskId));
        Assert.Equal(2, Plan(readBack, listing).Tasks.Count);
    }
}
