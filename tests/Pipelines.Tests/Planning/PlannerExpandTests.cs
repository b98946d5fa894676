using Pipelines.Planning;
using static Pipelines.Tests.Planning.PlanFixtures;

namespace Pipelines.Tests.Planning;

[Unit]
public sealed class PlannerExpandTests
{
    [Fact]
    public void Expand_puts_in_paths_in_key_order_and_substitutes_the_task_id()
    {
        var workflow = Flow("  batch: 3", command: """["stats", "--id", "{task}", "--out", "{out}/stats.tsv", "{inputs}"]""");
        var task = Assert.Single(Plan(workflow, Files("lane1/b.fastq", "c.fastq", "a.fastq")).Tasks);

        var step = Assert.Single(Planner.Expand(workflow, Digests, task.Inputs, task.Captures, task.TaskId));

        Assert.Equal(
            ["stats", "--id", task.TaskId, "--out", "/out/stats.tsv", "/in/a.fastq", "/in/c.fastq", "/in/lane1/b.fastq"],
            step.Command);
    }

    [Fact]
    public void Expand_substitutes_captures_and_input_in_command_and_env()
    {
        var workflow = Flow(
            """  group_by: '(?<sample>[^/]+)\.fastq$'""",
            command: """["stats", "--sample", "{sample}", "{inputs}"]""",
            step: """    env: { SAMPLE: "{sample}", OUT: "{out}/{task}", BRACES: "{{x}}" }""");
        var task = Assert.Single(Plan(workflow, Files("runs/S7.fastq")).Tasks);

        var step = Assert.Single(Planner.Expand(workflow, Digests, task.Inputs, task.Captures, "t-1"));

        Assert.Equal(["stats", "--sample", "S7", "/in/runs/S7.fastq"], step.Command);
        Assert.Equal(
            new Dictionary<string, string> { ["BRACES"] = "{x}", ["OUT"] = "/out/t-1", ["SAMPLE"] = "S7" },
            step.Env);
    }

    [Fact]
    public void Expand_without_task_id_leaves_the_task_placeholder_literal()
    {
        var workflow = Flow(command: """["stats", "{task}", "{input}"]""");

        var step = Assert.Single(Planner.Expand(workflow, Digests, Files("a.fastq"), new Dictionary<string, string>(), taskId: null));

        Assert.Equal(["stats", "{task}", "/in/a.fastq"], step.Command);
    }

    [Fact]
    public void Expand_carries_the_step_with_its_image_digest()
    {
        var workflow = Flow(step: """
                resources: { cpus: 2, memory: 1Gi }
                retries: 2
                outputs: ["*.tsv"]
            """);

        var step = Assert.Single(Planner.Expand(workflow, Digests, Files("a.fastq"), new Dictionary<string, string>(), "t"));

        Assert.Equal("stats", step.Name);
        Assert.Equal(Image, step.Image);
        Assert.Equal("sha256:1111", step.ImageDigest);
        Assert.Equal(workflow.Steps[0].Resources, step.Resources);
        Assert.Equal(2, step.Retries);
        Assert.Equal(["*.tsv"], step.Outputs);
    }

    [Fact]
    public void Expand_without_a_resolved_digest_is_an_error()
    {
        var e = Assert.Throws<InvalidOperationException>(() =>
            Planner.Expand(Flow(), new Dictionary<string, string>(), Files("a.fastq"), new Dictionary<string, string>(), "t"));

        Assert.Equal($"no digest resolved for image {Image}", e.Message);
    }
}
