using Pipelines.Model;

namespace Pipelines.Tests.Model;

/// <summary>The fast path's two fields: input.batch: auto and a step's reuse.</summary>
[Unit]
public sealed class ReuseAndAutoBatchTests
{
    private static Workflow Parse(string batch, string reuse) => WorkflowParser.Parse(
        $"""
        version: 1
        name: fast
        input:
          uri: s3://bucket/in/
          batch: {batch}
        steps:
          - name: s
            image: x:1
            command: ["true"]
            {reuse}
        output:
          uri: s3://bucket/out/
        """,
        "fast.yaml",
        null);

    [Fact]
    public void Batch_auto_is_kept_for_the_submitter_to_size_and_reuse_is_on_by_default()
    {
        var w = Parse("auto", "");

        Assert.True(w.Input.BatchAuto);
        Assert.True(w.Steps[0].Reuse);
        Assert.False(w.Steps[0].ReuseSaid);
    }

    [Fact]
    public void Reuse_false_opts_out_and_is_known_to_be_said()
    {
        var w = Parse("1", "reuse: false");

        Assert.False(w.Steps[0].Reuse);
        Assert.True(w.Steps[0].ReuseSaid);
    }

    [Fact]
    public void A_number_is_a_fixed_batch_and_reuse_true_is_read()
    {
        var w = Parse("50", "reuse: true");

        Assert.False(w.Input.BatchAuto);
        Assert.Equal(50, w.Input.Batch);
        Assert.True(w.Steps[0].Reuse);
        Assert.True(w.Steps[0].ReuseSaid);
    }

    [Fact]
    public void Reuse_that_is_not_a_boolean_is_reported_with_its_place()
    {
        var e = Assert.Throws<WorkflowInvalidException>(() => Parse("1", "reuse: sometimes"));

        var p = Assert.Single(e.Problems);
        Assert.Equal("steps[0].reuse", p.Path);
        Assert.Equal("'sometimes' is not true or false", p.Message);
        Assert.Equal(10, p.Line);
    }
}
