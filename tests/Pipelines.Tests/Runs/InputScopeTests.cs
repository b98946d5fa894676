using Pipelines.Runs;

namespace Pipelines.Tests.Runs;

/// <summary>What of a listing is a run's input when output.uri lies inside input.uri.</summary>
[Unit]
public sealed class InputScopeTests
{
    [Theory]
    [InlineData("results/20261126-053012-7f3a9c/tasks/t/stats/stats.tsv")]
    [InlineData("results/20261126-053012-7f3a9c/run.json")]
    [InlineData("results/.cache/0123456789abcdef01234567.json")]
    public void Admit_leaves_out_and_counts_what_the_engine_wrote_under_an_output_inside_the_input(string key)
    {
        var scope = new InputScope("/data/reads/", "/data/reads/results");

        Assert.False(scope.Admit(key));
        Assert.Equal(1, scope.LeftOut);
        Assert.Equal("1 file(s) under the output location /data/reads/results/ (earlier runs' results) were left out of the input", scope.Note);
    }

    [Theory]
    [InlineData("results/notes.txt")]
    [InlineData("results/my-run/a.fastq")]
    [InlineData("resultsX/20261126-053012-7f3a9c/a.fastq")]
    [InlineData("lane1/20261126-053012-7f3a9c/a.fastq")]
    [InlineData("a.fastq")]
    public void Admit_keeps_files_that_are_not_the_engines_outputs(string key)
    {
        var scope = new InputScope("/data/reads/", "/data/reads/results/");

        Assert.True(scope.Admit(key));
        Assert.Equal(0, scope.LeftOut);
        Assert.Null(scope.Note);
    }

    [Fact]
    public void Admit_with_output_equal_to_input_leaves_out_only_run_folders_and_the_cache()
    {
        var scope = new InputScope("s3://bucket/reads/", "s3://bucket/reads");

        Assert.False(scope.Admit("20261126-053012-7f3a9c/run.json"));
        Assert.False(scope.Admit(".cache/x.json"));
        Assert.True(scope.Admit("S1_R1.fastq"));
        Assert.Equal(2, scope.LeftOut);
    }

    [Theory]
    [InlineData("s3://bucket/reads/", "s3://other/reads/results/")]
    [InlineData("s3://bucket/reads/", "s3://bucket/reads-out/")]
    [InlineData("/data/reads/", "/data/out/")]
    [InlineData("/data/reads/", "s3://data/reads/results/")]
    public void Admit_keeps_everything_when_the_output_is_elsewhere(string input, string output)
    {
        var scope = new InputScope(input, output);

        Assert.True(scope.Admit("results/20261126-053012-7f3a9c/run.json"));
        Assert.True(scope.IsEngineOutput("x") is false);
    }

    [Fact]
    public void Admit_leaves_out_the_outputs_of_an_s3_output_prefix_under_the_input_prefix()
    {
        var scope = new InputScope("s3://bucket/", "s3://bucket/runs/qc/");

        Assert.False(scope.Admit("runs/qc/20261126-053012-7f3a9c/results/stats.parquet"));
        Assert.True(scope.Admit("runs/other/20261126-053012-7f3a9c/results/stats.parquet"));
    }

    [Fact]
    public void Admit_refuses_a_key_with_a_newline_naming_it_escaped()
    {
        var scope = new InputScope("/data/reads/", "/data/out/");

        var e = Assert.Throws<PipelinesException>(() => scope.Admit("lane1/new\nline.fastq"));

        Assert.Equal(@"input 'lane1/new\nline.fastq' under /data/reads/ holds a control character: rename it (names like this are refused, never skipped)", e.Message);
        Assert.False(e.RetryHelps);
    }
}
