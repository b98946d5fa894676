using System.Text.RegularExpressions;
using Pipelines.Model;

namespace Pipelines.Tests.Model;

[Unit]
public sealed class GroupByPatternTests
{
    private const string Pattern = @"(?<sample>[^/]+)_R[12]\.fastq$";

    private static Workflow Grouped() =>
        WorkflowText.Parse(WorkflowText.Minimal.Replace("  uri: s3://in-bucket/data/", "  uri: s3://in-bucket/data/\n  group_by: '" + Pattern + "'", StringComparison.Ordinal));

    [Fact]
    public void Parser_compiles_group_by_once_culture_invariant_with_a_one_second_timeout()
    {
        var input = Grouped().Input;

        var pattern = input.GroupByPattern;

        Assert.NotNull(pattern);
        Assert.Same(pattern, input.GroupByPattern);
        Assert.Equal(Pattern, pattern.Text);
        Assert.Equal(TimeSpan.FromSeconds(1), pattern.Regex.MatchTimeout);
        Assert.Equal(RegexOptions.CultureInvariant, pattern.Regex.Options);
        Assert.Equal(["sample"], pattern.Captures);
    }

    [Fact]
    public void A_workflow_without_group_by_has_no_pattern()
    {
        Assert.Null(WorkflowText.Parse(WorkflowText.Minimal).Input.GroupByPattern);
    }

    [Fact]
    public void Changing_the_group_by_text_with_a_copy_compiles_the_new_text()
    {
        var input = Grouped().Input with { GroupBy = @"(?<run>\d+)/" };

        Assert.Equal(@"(?<run>\d+)/", input.GroupByPattern!.Text);
        Assert.Equal(["run"], input.GroupByPattern.Captures);
    }

    [Fact]
    public void Match_gives_the_named_captures_or_null()
    {
        var pattern = GroupByPattern.Compile(@"(?<sample>S\d+)_(?<lane>L\d+)");

        Assert.Equal(new Dictionary<string, string> { ["sample"] = "S1", ["lane"] = "L2" }, pattern.Match("run/S1_L2_R1.fastq"));
        Assert.Null(pattern.Match("README.md"));
    }

    [Fact]
    public void Match_that_times_out_is_a_problem_at_group_by_naming_the_key()
    {
        // (a|aa)+ before a character that never comes backtracks through exponentially many splits.
        var key = new string('a', 64) + "!";
        var pattern = GroupByPattern.Compile("^(?<sample>(a|aa)+)$", TimeSpan.FromMilliseconds(50));

        var e = Assert.Throws<WorkflowInvalidException>(() => pattern.Match(key));

        var p = Assert.Single(e.Problems);
        Assert.Equal("input.group_by", p.Path);
        Assert.Contains($"took longer than 50 ms to match the key '{key}'", p.Message, StringComparison.Ordinal);
        Assert.False(e.RetryHelps);
    }
}
