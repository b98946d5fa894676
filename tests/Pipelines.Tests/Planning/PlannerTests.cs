using Pipelines.Model;
using Pipelines.Planning;
using static Pipelines.Tests.Planning.PlanFixtures;

namespace Pipelines.Tests.Planning;

[Unit]
public sealed class PlannerTests
{
    [Fact]
    public void Planner_makes_one_task_per_selected_file_in_key_order()
    {
        var plan = Plan(Flow("""  include: ["**/*.fastq"]"""), Files("c.fastq", "lane1/a.fastq", "notes.txt", "a.fastq"));

        Assert.Equal([["a.fastq"], ["c.fastq"], ["lane1/a.fastq"]], Keys(plan));
        Assert.Equal([0, 1, 2], plan.Tasks.Select(t => t.Index));
        Assert.All(plan.Tasks, t => Assert.Empty(t.Captures));
        Assert.Equal((4, 3, 0), (plan.FilesListed, plan.FilesSelected, plan.FilesUngrouped));
    }

    [Fact]
    public void Planner_orders_keys_ordinally()
    {
        var plan = Plan(Flow(), Files("b.fastq", "a.fastq", "B.fastq", "a.fastq.gz"));

        Assert.Equal([["B.fastq"], ["a.fastq"], ["a.fastq.gz"], ["b.fastq"]], Keys(plan));
    }

    [Fact]
    public void Planner_leaves_out_excluded_files()
    {
        var plan = Plan(Flow("""  exclude: ["**/tmp/**"]"""), Files("a.fastq", "tmp/b.fastq", "lane1/tmp/c.fastq"));

        Assert.Equal([["a.fastq"]], Keys(plan));
        Assert.Equal((3, 1), (plan.FilesListed, plan.FilesSelected));
    }

    [Fact]
    public void Planner_with_nothing_selected_plans_no_task()
    {
        var plan = Plan(Flow("""  include: ["**/*.bam"]"""), Files("a.fastq"));

        Assert.Empty(plan.Tasks);
        Assert.Equal((1, 0), (plan.FilesListed, plan.FilesSelected));
    }

    [Fact]
    public void Planner_batch_puts_that_many_units_in_a_task()
    {
        var plan = Plan(Flow("  batch: 2"), Files("e", "d", "c", "b", "a"));

        Assert.Equal([["a", "b"], ["c", "d"], ["e"]], Keys(plan));
    }

    [Fact]
    public void Planner_batch_larger_than_the_listing_makes_one_task()
    {
        var plan = Plan(Flow("  batch: 50"), Files("b", "a"));

        Assert.Equal([["a", "b"]], Keys(plan));
    }

    [Fact]
    public void Planner_groups_paired_end_reads_by_sample()
    {
        var workflow = Flow("""
              include: ["**/*.fastq", "**/*.fastq.gz"]
              group_by: '(?<sample>[^/]+)_R[12]\.fastq(\.gz)?$'
            """, command: """["stats", "--sample", "{sample}", "{inputs}"]""");
        var listing = Files(
            "lane1/S2_R2.fastq.gz",
            "lane1/S1_R2.fastq",
            "lane1/Undetermined.fastq",
            "lane1/S1_R1.fastq",
            "lane1/S2_R1.fastq.gz",
            "README.md");

        var plan = Plan(workflow, listing);

        Assert.Equal([["lane1/S1_R1.fastq", "lane1/S1_R2.fastq"], ["lane1/S2_R1.fastq.gz", "lane1/S2_R2.fastq.gz"]], Keys(plan));
        Assert.Equal(["S1", "S2"], plan.Tasks.Select(t => t.Captures["sample"]));
        Assert.Equal((6, 5, 1), (plan.FilesListed, plan.FilesSelected, plan.FilesUngrouped));
    }

    [Fact]
    public void Planner_groups_the_same_sample_across_folders()
    {
        var plan = Plan(
            Flow("""  group_by: '(?<sample>[^/]+)_R[12]\.fastq$'"""),
            Files("lane2/S1_R2.fastq", "lane1/S1_R1.fastq"));

        Assert.Equal([["lane1/S1_R1.fastq", "lane2/S1_R2.fastq"]], Keys(plan));
    }

    [Fact]
    public void Planner_groups_by_every_named_capture()
    {
        var plan = Plan(
            Flow("""  group_by: '(?<sample>S\d+)_(?<lane>L\d+)_R[12]\.fastq$'"""),
            Files("S1_L1_R1.fastq", "S1_L1_R2.fastq", "S1_L2_R1.fastq", "S1_L2_R2.fastq"));

        Assert.Equal([["S1_L1_R1.fastq", "S1_L1_R2.fastq"], ["S1_L2_R1.fastq", "S1_L2_R2.fastq"]], Keys(plan));
        Assert.Equal(
            [("S1", "L1"), ("S1", "L2")],
            plan.Tasks.Select(t => (t.Captures["sample"], t.Captures["lane"])));
    }

    [Fact]
    public void Planner_batches_groups_and_drops_captures_that_differ()
    {
        var plan = Plan(
            Flow("""
                  group_by: '(?<sample>[^/]+)_R[12]\.fastq$'
                  batch: 2
                """),
            Files("S1_R1.fastq", "S1_R2.fastq", "S2_R1.fastq", "S2_R2.fastq", "S3_R1.fastq"));

        Assert.Equal([["S1_R1.fastq", "S1_R2.fastq", "S2_R1.fastq", "S2_R2.fastq"], ["S3_R1.fastq"]], Keys(plan));
        Assert.All(plan.Tasks, t => Assert.Empty(t.Captures));
    }

    [Fact]
    public void Planner_refuses_two_tasks_with_the_same_work()
    {
        var listing = new[] { File("a.fastq"), File("a.fastq") };

        var e = Assert.Throws<WorkflowInvalidException>(() => Plan(Flow(), listing));

        var p = Assert.Single(e.Problems);
        Assert.Equal("input", p.Path);
        Assert.Equal("tasks 0 and 1 would do the same work on the same inputs (a.fastq); list each file once", p.Message);
    }

    [Fact]
    public void Planner_refuses_input_placeholder_for_a_task_of_two_files()
    {
        var e = Assert.Throws<WorkflowInvalidException>(() => Plan(
            SheetFlow("""["stats", "{input}"]"""),
            Files("S1_R1.fastq", "S1_R2.fastq"),
            "sample,fastq_1,fastq_2\nS1,S1_R1.fastq,S1_R2.fastq\n"));

        var p = Assert.Single(e.Problems);
        Assert.Equal("steps[0].command", p.Path);
        Assert.Equal("uses {input}, but a task has 2 inputs (S1_R1.fastq, S1_R2.fastq); use {inputs}", p.Message);
    }

    [Fact]
    public void Planner_accepts_input_placeholder_for_single_file_rows()
    {
        var plan = Plan(SheetFlow("""["stats", "{input}"]"""), Files("S1.fastq"), "sample,fastq\nS1,S1.fastq\n");

        Assert.Equal([["S1.fastq"]], Keys(plan));
    }

    [Fact]
    public void Planner_refuses_input_placeholder_in_env_for_a_task_of_many_files()
    {
        var workflow = Flow(command: """["stats"]""", step: """    env: { IN: "{input}" }""");
        var e = Assert.Throws<WorkflowInvalidException>(() => Planner.Plan(
            workflow with { Input = workflow.Input with { Batch = 4 } },
            Files("a", "b", "c", "d"),
            null,
            Digests));

        Assert.Equal("uses {input}, but a task has 4 inputs (a, b, c, ...); use {inputs}", Assert.Single(e.Problems).Message);
    }
}
