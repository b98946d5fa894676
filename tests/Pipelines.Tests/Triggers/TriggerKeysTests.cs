using Pipelines.Triggers;

namespace Pipelines.Tests.Triggers;

[Unit]
public sealed class TriggerKeysTests
{
    [Theory]
    [InlineData("a.fastq")]
    [InlineData("lane1/S001_R1.fastq")]
    [InlineData("with space/and+plus.fastq")]
    [InlineData("..hidden/x..y.fastq")]
    public void Ordinary_keys_are_accepted(string key) => Assert.Null(TriggerKeys.Problem(key));

    [Theory]
    [InlineData("../escape.fastq")]
    [InlineData("a/../../escape.fastq")]
    [InlineData("a/./b.fastq")]
    [InlineData("..")]
    public void Keys_with_dot_segments_escape_the_prefix(string key) =>
        Assert.Contains("escapes the prefix", TriggerKeys.Problem(key), StringComparison.Ordinal);

    [Theory]
    [InlineData("")]
    [InlineData("/abs.fastq")]
    [InlineData("a//b.fastq")]
    [InlineData("a\\..\\b.fastq")]
    [InlineData("folder/")]
    public void Empty_segments_and_backslashes_are_refused(string key) => Assert.NotNull(TriggerKeys.Problem(key));

    [Theory]
    [InlineData("new\nline.fastq", "the key holds a control character")]
    [InlineData("Icon\r", "the key holds a control character")]
    [InlineData("bad\uFFFD.fastq", "the key is not valid UTF-8 (shown with U+FFFD)")]
    public void Keys_a_run_would_refuse_are_rejected_with_the_same_reason(string key, string problem) =>
        Assert.Equal(problem, TriggerKeys.Problem(key));

    [Fact]
    public void A_runs_output_under_the_watched_prefix_is_rejected_so_it_never_starts_a_run()
    {
        var outputs = new Pipelines.Runs.InputScope("s3://incoming/", "s3://incoming/results/");

        Assert.Equal("the key is a run's output under the workflow's output.uri s3://incoming/results/", TriggerKeys.OutputProblem(outputs, "results/20261126-053012-7f3a9c/run.json"));
        Assert.Null(TriggerKeys.OutputProblem(outputs, "lane1/S001_R1.fastq"));
    }
}
